import { describe, expect, it } from "vitest";
import { errorReply, parseAnswersA, parseQuestion } from "./dns-packet.js";

const name = (n: string) =>
  Buffer.concat([
    ...n.split(".").map((l) => Buffer.from([l.length, ...Buffer.from(l)])),
    Buffer.from([0]),
  ]);

/** A query for `n` (type A), as a stub resolver sends it. */
function query(n: string, id = 0x1234): Buffer {
  const header = Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
  return Buffer.concat([header, name(n), Buffer.from([0, 1, 0, 1])]);
}

describe("dns packets", () => {
  it("reads the question of a query and refuses what is not one", () => {
    expect(parseQuestion(query("Web.Example.com"))).toMatchObject({
      id: 0x1234,
      name: "web.example.com",
      type: 1,
    });
    const reply = query("a.b");
    reply[2] = 0x81;
    expect(parseQuestion(reply)).toBeUndefined();
    expect(parseQuestion(Buffer.from([1, 2, 3]))).toBeUndefined();
  });

  it("reads A answers behind a CNAME, with compressed names", () => {
    const q = query("www.example.com");
    const header = Buffer.from(q.subarray(0, 12));
    header.writeUInt16BE(0x8180, 2);
    header.writeUInt16BE(2, 6);
    const cname = Buffer.concat([
      Buffer.from([0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60]),
      Buffer.from([0, 6, 3, ...Buffer.from("cdn"), 0xc0, 16]),
    ]);
    const a = Buffer.from([
      0xc0,
      12 + q.length - 12 + 10 + 2,
      0,
      1,
      0,
      1,
      0,
      0,
      1,
      44,
      0,
      4,
      198,
      51,
      100,
      9,
    ]);
    const msg = Buffer.concat([header, q.subarray(12), cname, a]);
    expect(parseAnswersA(msg)).toEqual([{ address: "198.51.100.9", ttl: 300 }]);
  });

  it("answers NXDOMAIN with the query's id and question only", () => {
    const q = query("denied.example.com", 7);
    const question = parseQuestion(q)!;
    const reply = errorReply(Buffer.concat([q, Buffer.from([0, 0, 41])]), question, 3);
    expect(reply.readUInt16BE(0)).toBe(7);
    expect(reply[2]! & 0x80).toBe(0x80);
    expect(reply[3]! & 0x0f).toBe(3);
    expect(reply.length).toBe(q.length);
    expect(parseAnswersA(reply)).toEqual([]);
  });
});
