/** A bench result and an SVG well-formedness check, for the plot tests (unit and kernel tier). */
import { expect } from 'chai';
import type { BenchResult, Timing } from '../../src/cli/bench.js';

const T = (median: number, min: number, max: number, n: number): Timing => ({ median, min, max, n });

export const RESULT: BenchResult = {
  machine: 'AMD EPYC <test> & co x2, 23 GiB',
  kernel: '6.18.44-test',
  date: '2026-11-30T12:34:56.000Z',
  mode: 'tracepoint',
  lookups: [
    { fds: 1000, memberships: 3, bpf: T(11.0, 10.2, 187.2, 2000), fdinfo: T(4300, 4100, 8500, 50), ratio: 390, source: 'bpf' },
    { fds: 10000, memberships: 3, bpf: T(9.0, 8.7, 120.2, 2000), fdinfo: T(49900, 48900, 63700, 20), ratio: 5570, source: 'bpf' },
    { fds: 19000, memberships: 3, bpf: T(9.2, 9.0, 83.6, 2000), fdinfo: T(93800, 92200, 106200, 11), ratio: 10159, source: 'bpf' },
  ],
  flatness: 0.84,
};

/**
 * A small well-formedness check: one root element, every start tag closed by
 * the matching end tag, quoted attributes, no bare `<` or `&` in text.
 * Returns the element names in document order.
 */
export function checkWellFormed(xml: string): string[] {
  const body = xml.replace(/^<\?xml[^?]*\?>\s*/, '').replace(/<!--[\s\S]*?-->/g, '');
  const names: string[] = [];
  const stack: string[] = [];
  let roots = 0;
  const tag = /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)>/y;
  let i = 0;
  while (i < body.length) {
    const lt = body.indexOf('<', i);
    const text = body.slice(i, lt < 0 ? body.length : lt);
    expect(text, `text before offset ${lt}`).to.not.match(/&(?!(?:lt|gt|amp|quot|apos|#\d+|#x[0-9a-fA-F]+);)/);
    if (stack.length === 0) expect(text.trim(), 'text outside the root element').to.equal('');
    if (lt < 0) break;
    tag.lastIndex = lt;
    const m = tag.exec(body);
    expect(m, `malformed tag at offset ${lt}: ${body.slice(lt, lt + 60)}`).to.not.equal(null);
    const [whole, close, name, , selfClose] = m!;
    if (close) {
      expect(stack.pop(), `</${name}> at offset ${lt}`).to.equal(name);
    } else {
      if (stack.length === 0) roots++;
      names.push(name);
      if (!selfClose) stack.push(name);
    }
    i = lt + whole.length;
  }
  expect(stack, 'unclosed elements').to.deep.equal([]);
  expect(roots, 'root elements').to.equal(1);
  return names;
}
