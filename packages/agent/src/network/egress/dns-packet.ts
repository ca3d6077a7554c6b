/** Just enough of RFC 1035 for the forwarder: the question's name, A answers, error replies. */

const TYPE_A = 1;
const HEADER = 12;

/** The name at `offset` (following compression pointers) and the offset just past it. */
function readName(msg: Buffer, offset: number): { name: string; end: number } {
  const labels: string[] = [];
  let end = -1;
  for (let at = offset, hops = 0; ; ) {
    if (at >= msg.length || hops > 64) throw new Error("truncated name");
    const len = msg[at]!;
    if (len === 0) {
      if (end < 0) end = at + 1;
      break;
    }
    if ((len & 0xc0) === 0xc0) {
      if (end < 0) end = at + 2;
      at = ((len & 0x3f) << 8) | msg[at + 1]!;
      hops++;
      continue;
    }
    labels.push(msg.subarray(at + 1, at + 1 + len).toString("latin1"));
    at += 1 + len;
  }
  return { name: labels.join(".").toLowerCase(), end };
}

export interface DnsQuestion {
  id: number;
  name: string;
  type: number;
  /** Offset just past the (first) question. */
  end: number;
}

/** The first question of a query; undefined when the packet is not a well-formed query. */
export function parseQuestion(msg: Buffer): DnsQuestion | undefined {
  try {
    if (msg.length < HEADER || (msg[2]! & 0x80) !== 0 || msg.readUInt16BE(4) < 1) return undefined;
    const { name, end } = readName(msg, HEADER);
    if (end + 4 > msg.length) return undefined;
    return { id: msg.readUInt16BE(0), name, type: msg.readUInt16BE(end), end: end + 4 };
  } catch {
    return undefined;
  }
}

export interface DnsAnswerA {
  address: string;
  ttl: number;
}

/** The A records in the answer section of a response (whatever their owner: CNAME chains). */
export function parseAnswersA(msg: Buffer): DnsAnswerA[] {
  const answers: DnsAnswerA[] = [];
  try {
    const questions = msg.readUInt16BE(4);
    const count = msg.readUInt16BE(6);
    let at = HEADER;
    for (let i = 0; i < questions; i++) at = readName(msg, at).end + 4;
    for (let i = 0; i < count; i++) {
      at = readName(msg, at).end;
      const type = msg.readUInt16BE(at);
      const ttl = msg.readUInt32BE(at + 4);
      const length = msg.readUInt16BE(at + 8);
      at += 10;
      if (type === TYPE_A && length === 4 && at + 4 <= msg.length) {
        answers.push({ address: [...msg.subarray(at, at + 4)].join("."), ttl });
      }
      at += length;
    }
  } catch {
    // A truncated tail: what was read is still right.
  }
  return answers;
}

/** RCODE 2 (server failure), 3 (no such name) or 5 (refused), echoing id and question. */
export function errorReply(query: Buffer, question: DnsQuestion, rcode: 2 | 3 | 5): Buffer {
  const reply = Buffer.from(query.subarray(0, question.end));
  reply[2] = 0x80 | (query[2]! & 0x79); // QR, keep opcode and RD
  reply[3] = 0x80 | rcode; // RA
  reply.writeUInt16BE(1, 4);
  reply.writeUInt32BE(0, 6);
  reply.writeUInt16BE(0, 10);
  return reply;
}
