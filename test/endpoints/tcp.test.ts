/** socketPeer: how a TCP peer is named in the logs. */
import { describe, it, expect } from 'vitest';
import net from 'node:net';
import { socketPeer } from '../../src/endpoints/tcp';

describe('socketPeer', () => {
  it('names an IPv4 client of a dual-stack listener by its IPv4 address', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '::', resolve));
    const { port } = server.address() as net.AddressInfo;
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    const client = net.connect({ port, host: '127.0.0.1' });
    const socket = await accepted;
    expect(socketPeer(socket, 'remote')).toMatchObject({ address: '127.0.0.1', port: client.localPort });
    client.destroy();
    socket.destroy();
    server.close();
  });

  it('a client that reset before it was accepted has no address: the log says so instead of "?:?"', () => {
    // What accept hands over when the peer's RST came first: getpeername() fails, no address.
    const gone = new net.Socket();
    const peer = socketPeer(gone, 'remote');
    expect(peer.label).toBe('a client already gone (reset at once)');
    expect(peer.label).not.toContain('?');
  });
});
