/** `epolltrack daemon`: start, say where, serve until SIGINT/SIGTERM. */
import { startDaemon } from '../daemon/server.js';

export async function runDaemon(o: { listen?: string; pinDir: string; out: (s: string) => void }): Promise<number> {
  const d = await startDaemon({ listen: o.listen, pinDir: o.pinDir });
  o.out(`epolltrack: dashboard at ${d.url}, metrics at ${d.url}metrics, API at ${d.url}api/ (tracker ${d.loadedHere ? 'loaded' : 'found'} at ${d.pinDir})`);
  if (!/^(127\.|::1$|::ffff:127\.)/.test(d.host)) {
    process.stderr.write('epolltrack: warning: the dashboard has no authentication and shows every process\'s command line and connections: keep it on localhost or behind a proxy\n');
  }
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await d.close();
  return 0;
}
