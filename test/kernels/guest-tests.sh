#!/bin/bash
# Runs INSIDE a guest (started by run-all.sh through run-in-guest.sh), in the
# project root: the mocha suites in one hook mode, the hook check of that mode,
# and (when asked) the auto-selection status check.
#
# Env (passed in through EPOLLTRACK_GUEST_ENV):
#   EPOLLTRACK_BPF_OBJECT   the object built against this kernel's BTF
#   EPOLLTRACK_MODE         fentry | kprobe (the mode the suites must take)
#   EPOLLTRACK_STEPS        differential test steps
#   CI                      true: a skipped test is a failure
#   ET_GUEST_GREP           mocha --grep pattern
#   ET_GUEST_STATUS         1 = also run status-check.mjs (mode 'auto')
#   ET_GUEST_EXPECT_AUTO    mode auto-selection must pick (default fentry)
#   ET_GUEST_MOCHA_TIMEOUT  per-test timeout in ms (default 300000: TCG is
#                           10-20 times slower than the host)
# Output sections start with "@@ET-SECTION name@@" lines; run-all.sh parses them.
set -u
rc=0

# The object run-all.sh built against this kernel's own BTF.
echo "guest-tests: kernel $(uname -r), BPF object ${EPOLLTRACK_BPF_OBJECT:-build/epolltrack.bpf.o}"
if [ -n "${EPOLLTRACK_BPF_OBJECT:-}" ] && [ ! -s "$EPOLLTRACK_BPF_OBJECT" ]; then echo "guest-tests: $EPOLLTRACK_BPF_OBJECT is missing"; rc=1; fi
echo "@@ET-SECTION mocha@@"
node node_modules/mocha/bin/mocha.js --no-color --reporter spec \
  --timeout "${ET_GUEST_MOCHA_TIMEOUT:-300000}" --grep "${ET_GUEST_GREP:-^Tracker}" || rc=1

echo "@@ET-SECTION hooks@@"
node test/kernels/hook-check.mjs || rc=1

if [ "${ET_GUEST_STATUS:-0}" = 1 ]; then
  echo "@@ET-SECTION status@@"
  env -u EPOLLTRACK_MODE EPOLLTRACK_EXPECT_MODE="${ET_GUEST_EXPECT_AUTO:-fentry}" \
    node test/kernels/status-check.mjs || rc=1
fi
echo "@@ET-SECTION end@@"
exit $rc
