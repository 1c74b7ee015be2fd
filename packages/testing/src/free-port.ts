import { createServer } from 'node:net';

/**
 * A TCP port that was free a moment ago on `host`. Only for what must be known before a process
 * starts (cluster route ports); a single server picks its own client port.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const address = srv.address();
      srv.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
