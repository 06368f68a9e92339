import { expect } from 'chai';
import {
  BadFdError, BadInputError, BpfError, EpolltrackError, isNotSupported, LibbpfError, MapFullError, MountError,
  NoSuchProcessError, NotLoadedError, NotRootError, NotSupportedError, PermissionError,
} from '../../src/index.js';

describe('errors', () => {
  const table: [new (m?: string, o?: { cause?: unknown }) => EpolltrackError, string, string, RegExp][] = [
    [NotSupportedError, 'NotSupportedError', 'EPT_NOT_SUPPORTED', /not supported/],
    [NotRootError, 'NotRootError', 'EPT_NOT_ROOT', /root.*sudo/],
    [NotLoadedError, 'NotLoadedError', 'EPT_NOT_LOADED', /epolltrack load/],
    [NoSuchProcessError, 'NoSuchProcessError', 'EPT_NO_SUCH_PROCESS', /no such process/],
    [BadFdError, 'BadFdError', 'EPT_BAD_FD', /no open file/],
    [PermissionError, 'PermissionError', 'EPT_PERMISSION', /permission/],
    [LibbpfError, 'LibbpfError', 'EPT_LIBBPF', /apt-get install libbpf1/],
    [BpfError, 'BpfError', 'EPT_BPF', /BPF/],
    [MapFullError, 'MapFullError', 'EPT_MAP_FULL', /--max-regs/],
    [BadInputError, 'BadInputError', 'EPT_BAD_INPUT', /bad input/],
    [MountError, 'MountError', 'EPT_MOUNT', /mounted/],
  ];
  for (const [Cls, name, code, message] of table) {
    it(`${name}: name, stable code, one-line default message, cause kept`, () => {
      const cause = new Error('root cause');
      const e = new Cls(undefined, { cause });
      expect(e).to.be.instanceOf(EpolltrackError).and.instanceOf(Error);
      expect(e.name).to.equal(name);
      expect(e.code).to.equal(code);
      expect(e.message).to.match(message);
      expect(e.message).to.not.include('\n');
      expect(e.cause).to.equal(cause);
      expect(Object.keys(e)).to.not.include('name');
      expect(isNotSupported(e)).to.equal(Cls === NotSupportedError);
    });
  }
});
