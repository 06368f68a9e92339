/**
 * epolltrack: which epoll instances hold fd N of process P, answered from a
 * CO-RE BPF tracker in time independent of P's fd count, and verified against
 * the live kernel. The CLI, the daemon and the tests all use this entry.
 */
export { openTracker, Tracker, type TrackerOptions, type LookupInfo, type Registration, type FallbackReason } from './tracker/tracker.js';
export { fdinfoMemberships, parseEpollFdinfo, type Membership, type Source, type FdinfoOptions } from './tracker/fdinfo.js';
export { load, unload, status, isLoaded, type LoadOptions, type LoadResult, type Status } from '../loader/load.js';
export { DEFAULT_PIN_DIR, MODES, type Mode } from './kernel/names.js';
export * from './kernel/errors.js';
export { kcmp, kcmpEpollTfd, KCMP_FILE, KCMP_EPOLL_TFD, pidfdOpen, pidfdGetfd, takeFd } from './kernel/ffi.js';
export { replaceFd, type ReplaceTarget, type ReplaceOptions, type ReplaceResult, type SharedCopy, type UringSlot } from './supervise/replace.js';
export { Supervisor, type SupervisorOptions, type Redirect, type SwapRecord } from './supervise/supervisor.js';
export { launch, supervise, type Launched, type SuperviseResult } from './supervise/launch.js';
export { startAgent, type Agent, type AgentOptions, type ContainerInfo } from './supervise/agent.js';
export {
  recvNotification, respond, notificationValid, parseEndpoint, endpointProblem, formatSockaddr, sameAddr, type Notification, type SockAddr,
} from './supervise/seccomp.js';
export { decodeEvents } from './kernel/events.js';
// What an fd is, and selecting fds like lsof/ss (src/inspect).
export {
  FdResolver, describeFd, describeRegistrations, eventNames, FD_KINDS, type FdKind, type FdTarget, type DescribedRegistration,
} from './inspect/describe.js';
export {
  parseSelector, parseSelectorText, matchSelector, formatSelector, isEmptySelector, SELECTOR_KEYS, KIND_WORDS,
  type Selector, type SelectorKey, type SelectableRow,
} from './inspect/select.js';
export { checkProcess, checkFd, processInfo, visiblePids, type ProcessInfo } from './inspect/process.js';
export { fdinfoRegistrations, checkEpoll } from './inspect/registrations.js';
export type { Endpoint, SocketInfo } from './inspect/sockets.js';
