/** Error classes: name, stable code, one-line default message, cause and errno kept (root-free). */
import { expect } from 'chai';
import { constants } from 'node:os';
import {
  BadFdError, BadInputError, BpfError, BuildError, ClosedError, EpolltrackError, errnoName, isNotSupported, LibbpfError,
  ListenError, MapFullError, MountError, NoSuchProcessError, NotLoadedError, NotRootError, NotSupportedError,
  PermissionError, ReplaceError, type ErrorOptions,
} from '../../src/kernel/errors.js';
import * as api from '../../src/index.js';

type Make = (message: string | undefined, o: ErrorOptions) => EpolltrackError;
const std = (Cls: new (m?: string, o?: ErrorOptions) => EpolltrackError): Make => (m, o) => new Cls(m, o);

describe('errors', () => {
  const table: [Make, string, string, RegExp][] = [
    [std(NotSupportedError), 'NotSupportedError', 'EPT_NOT_SUPPORTED', /not supported/],
    [std(NotRootError), 'NotRootError', 'EPT_NOT_ROOT', /root.*sudo/],
    [std(NotLoadedError), 'NotLoadedError', 'EPT_NOT_LOADED', /epolltrack load/],
    [std(NoSuchProcessError), 'NoSuchProcessError', 'EPT_NO_SUCH_PROCESS', /no such process/],
    [std(BadFdError), 'BadFdError', 'EPT_BAD_FD', /no open file/],
    [std(PermissionError), 'PermissionError', 'EPT_PERMISSION', /permission/],
    [std(LibbpfError), 'LibbpfError', 'EPT_LIBBPF', /apt-get install libbpf1/],
    [std(BpfError), 'BpfError', 'EPT_BPF', /BPF/],
    [std(MapFullError), 'MapFullError', 'EPT_MAP_FULL', /--max-regs/],
    [std(BadInputError), 'BadInputError', 'EPT_BAD_INPUT', /bad input/],
    [std(MountError), 'MountError', 'EPT_MOUNT', /mounted/],
    [std(ClosedError), 'ClosedError', 'EPT_CLOSED', /closed.*new one/],
    [std(BuildError), 'BuildError', 'EPT_BUILD', /npm run build/],
    [std(ListenError), 'ListenError', 'EPT_LISTEN', /--listen/],
    [(m, o) => new ReplaceError(m, o.errno, o.cause), 'ReplaceError', 'EPT_REPLACE', /could not be replaced/],
  ];
  for (const [make, name, code, message] of table) {
    it(`${name}: name, stable code, one-line default message, cause and errno kept`, () => {
      const cause = new Error('root cause');
      const e = make(undefined, { cause, errno: constants.errno.EPERM });
      expect(e).to.be.instanceOf(EpolltrackError).and.instanceOf(Error);
      expect(e.name).to.equal(name);
      expect(e.code).to.equal(code);
      expect(e.message).to.match(message);
      expect(e.message).to.not.include('\n');
      expect(e.cause).to.equal(cause);
      expect(e.errno).to.equal(constants.errno.EPERM);
      expect(String(e)).to.equal(`${name}: ${e.message}`);
      expect(Object.keys(e)).to.not.include('name');
      expect(isNotSupported(e)).to.equal(name === 'NotSupportedError');
      // The public entry exports the same class.
      expect((api as Record<string, unknown>)[name]).to.equal(e.constructor);
      // A given message replaces the default one.
      expect(make('x: do y', {}).message).to.equal('x: do y');
    });
  }

  it('codes are distinct', () => {
    const codes = table.map(([make]) => make(undefined, {}).code);
    expect(new Set(codes).size).to.equal(codes.length);
  });

  it('no errno unless one is given; ReplaceError always has one (EIO by default)', () => {
    expect(new BpfError('x').errno).to.equal(undefined);
    expect(Object.keys(new BpfError('x'))).to.not.include('errno');
    expect(new ReplaceError('x').errno).to.equal(constants.errno.EIO);
    expect(new ReplaceError('x', constants.errno.ELOOP).errno).to.equal(constants.errno.ELOOP);
  });

  it('errnoName: names from os.constants.errno, either sign, ENOTSUPP, unknown numbers', () => {
    expect(errnoName(constants.errno.EPERM)).to.equal('EPERM');
    expect(errnoName(-constants.errno.ENOENT)).to.equal('ENOENT');
    expect(errnoName(constants.errno.E2BIG)).to.equal('E2BIG');
    expect(errnoName(constants.errno.EAGAIN)).to.equal('EAGAIN');
    expect(errnoName(constants.errno.EOPNOTSUPP)).to.equal('EOPNOTSUPP');
    expect(errnoName(524)).to.equal('ENOTSUPP');
    expect(errnoName(9999)).to.equal('errno 9999');
    for (const [name, n] of Object.entries(constants.errno)) {
      if (name !== 'EWOULDBLOCK' && name !== 'ENOTSUP') expect(errnoName(n), name).to.equal(name);
    }
  });
});
