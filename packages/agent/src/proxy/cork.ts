import type { Socket } from "node:net";

/**
 * Returns a function to call before each write to `socket` while relaying: the first call of an
 * event-loop turn corks the socket and the turn's end uncorks it, so what arrived in one turn
 * leaves in one writev instead of a send each. Headers and a stream's first message then share a
 * segment (each extra one costs the client a wakeup). Nothing waits past the turn. Cork the
 * socket, never a response: a finished response hands its keep-alive socket on, and the next
 * exchange on it must not find it corked.
 */
export function corkEachTurn(socket: Socket | null | undefined): () => void {
  if (!socket) return () => {};
  let corked = false;
  const uncork = () => {
    corked = false;
    socket.uncork();
  };
  return () => {
    if (corked) return;
    corked = true;
    socket.cork();
    setImmediate(uncork);
  };
}
