/** epoll event bits, decoded for people: `EPOLLIN|EPOLLET|0x...`. */
const BITS: [number, string][] = [
  [0x1, 'EPOLLIN'], [0x2, 'EPOLLPRI'], [0x4, 'EPOLLOUT'], [0x8, 'EPOLLERR'], [0x10, 'EPOLLHUP'],
  [0x20, 'EPOLLNVAL'], [0x40, 'EPOLLRDNORM'], [0x80, 'EPOLLRDBAND'], [0x100, 'EPOLLWRNORM'],
  [0x200, 'EPOLLWRBAND'], [0x400, 'EPOLLMSG'], [0x2000, 'EPOLLRDHUP'],
  [2 ** 28, 'EPOLLEXCLUSIVE'], [2 ** 29, 'EPOLLWAKEUP'], [2 ** 30, 'EPOLLONESHOT'], [2 ** 31, 'EPOLLET'],
];

export function decodeEvents(events: number): string {
  let rest = events >>> 0;
  const names: string[] = [];
  for (const [bit, name] of BITS) {
    if (rest & bit) {
      names.push(name);
      rest = (rest & ~bit) >>> 0;
    }
  }
  if (rest) names.push(`0x${rest.toString(16)}`);
  return names.length ? names.join('|') : '0';
}
