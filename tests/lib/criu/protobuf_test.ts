/**
 * lib/criu/protobuf.ts: known bytes of each wire type, the accessors' readings (as protobuf-c reads
 * them), the bounds (lengths, varints, fields, depth) and malformed input, each a SyntaxError.
 */
import assert from "node:assert/strict";
import {
  decodeMessage,
  MAX_DEPTH,
  type ProtoMessage,
  readVarint,
} from "../../../lib/criu/protobuf.ts";
import { encodeFields, type Field, varint, zigzag } from "../../tools/criuimages.ts";

const bytes = (...values: number[]) => new Uint8Array(values);
const decode = (data: Uint8Array, maxFields?: number): ProtoMessage =>
  decodeMessage(data, { what: "a test message", maxFields });

Deno.test("protobuf: varints of known bytes", () => {
  assert.deepEqual(readVarint(bytes(0x00), 0), { value: 0n, next: 1 });
  assert.deepEqual(readVarint(bytes(0x96, 0x01), 0), { value: 150n, next: 2 });
  assert.deepEqual(readVarint(bytes(0xff, 0xff, 0xff, 0xff, 0x0f), 0), {
    value: 0xffffffffn,
    next: 5,
  });
  const max = bytes(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01);
  assert.deepEqual(readVarint(max, 0), { value: 0xffffffffffffffffn, next: 10 });
  assert.deepEqual(
    varint(-1000),
    bytes(0x98, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
  );
  assert.throws(() => readVarint(bytes(0x80), 0), /runs past the end at byte 1/);
  assert.throws(
    () => readVarint(bytes(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02), 0),
    /exceeds 64 bits/,
  );
  assert.throws(
    () => readVarint(new Uint8Array(11).fill(0x80), 0),
    /exceeds 64 bits|over 10 bytes/,
  );
});

Deno.test("protobuf: each wire type of known bytes", () => {
  // field 1 varint 150; field 2 "hi"; field 3 fixed64; field 4 fixed32.
  const data = bytes(
    0x08,
    0x96,
    0x01,
    0x12,
    0x02,
    0x68,
    0x69,
    0x19,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    0x25,
    9,
    10,
    11,
    12,
  );
  const message = decode(data);
  assert.deepEqual(message.numbers(), [1, 2, 3, 4]);
  assert.equal(message.uint32(1), 150);
  assert.equal(message.uint64(1), 150n);
  assert.equal(message.string(2), "hi");
  assert.deepEqual(message.one(3, 1)?.value, bytes(1, 2, 3, 4, 5, 6, 7, 8));
  assert.deepEqual(message.one(4, 5)?.value, bytes(9, 10, 11, 12));
  assert.equal(message.uint32(9), undefined, "absent");
  assert.deepEqual(message.entries().map(([n, field]) => [n, field.at]), [
    [1, 0],
    [2, 3],
    [3, 7],
    [4, 16],
  ]);
});

Deno.test("protobuf: signed, bool and embedded readings", () => {
  const fields: Field[] = [
    { n: 1, wire: 0, value: BigInt.asUintN(64, -1000n) },
    { n: 2, wire: 0, value: BigInt(zigzag(-20)) },
    { n: 3, wire: 0, value: 2n },
    {
      n: 4,
      wire: 2,
      value: encodeFields([{ n: 1, wire: 0, value: 7n }, { n: 1, wire: 0, value: 8n }]),
    },
  ];
  const message = decode(encodeFields(fields));
  assert.equal(message.int32(1), -1000);
  assert.equal(message.sint32(2), -20);
  assert.equal(message.bool(3), true, "any non-zero varint is true");
  const inner = message.message(4, "inner")!;
  assert.equal(inner.depth, 1);
  assert.deepEqual(inner.all(1, 0).map((field) => field.value), [7n, 8n], "repeated: every one");
  assert.throws(() => inner.uint32(1), /field 1 appears 2 times \(at bytes 0, 2\)/);
  assert.deepEqual(message.messages(4, "inner").length, 1);
});

Deno.test("protobuf: readings criu would make differently are refused", () => {
  // A uint32 field whose varint goes beyond 32 bits (protobuf-c keeps the low bits: 0x200).
  const wide = decode(encodeFields([{ n: 2, wire: 0, value: 0x1_0000_0200n }]));
  assert.throws(() => wide.uint32(2), /field 2 \(4294967808\) exceeds 32 bits/);
  // An int32 out of range.
  const big = decode(encodeFields([{ n: 1, wire: 0, value: 0x80000000n }]));
  assert.throws(() => big.int32(1), /is not an int32/);
  // A field repeated that is not a repeated one: criu takes the last, a check might the first.
  const twice = decode(encodeFields([
    { n: 2, wire: 0, value: 0n },
    { n: 2, wire: 0, value: 0o1000n },
  ]));
  assert.throws(() => twice.uint32(2), /field 2 appears 2 times/);
  // Wrong wire type for what is asked.
  assert.throws(() => wide.string(2), /field 2 at byte 0 has wire type 0, not 2/);
  // Strings: UTF-8, no NUL (C would stop at it).
  const nul = decode(
    encodeFields([{ n: 6, wire: 2, value: new TextEncoder().encode("/tmp\0/x") }]),
  );
  assert.throws(() => nul.string(6), /field 6 holds a NUL byte/);
  const bad = decode(encodeFields([{ n: 6, wire: 2, value: bytes(0xff, 0xfe) }]));
  assert.throws(() => bad.string(6), /field 6 is not UTF-8/);
});

Deno.test("protobuf: malformed and unbounded input", () => {
  assert.equal(decode(new Uint8Array(0)).numbers().length, 0, "empty is a message of no fields");
  assert.throws(() => decode(bytes(0x12, 0x05, 0x61)), /field 2 at byte 0 says 5 bytes, 1 left/);
  assert.throws(() => decode(bytes(0x19, 1, 2, 3)), /field 3 at byte 0 needs 8 bytes, 3 left/);
  assert.throws(() => decode(bytes(0x25, 1)), /field 4 at byte 0 needs 4 bytes, 1 left/);
  assert.throws(() => decode(bytes(0x0b)), /field 1 at byte 0 has wire type 3/, "groups");
  assert.throws(() => decode(bytes(0x0c)), /wire type 4/);
  assert.throws(() => decode(bytes(0x0e, 0)), /wire type 6/);
  assert.throws(() => decode(bytes(0x00, 0x01)), /field number 0 at byte 0/);
  assert.throws(() => decode(bytes(0x08)), /runs past the end at byte 1/);
  // A length that would overflow a 32-bit size.
  assert.throws(
    () => decode(bytes(0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f)),
    /says \d+ bytes, 0 left/,
  );
  // Too many fields.
  const many = encodeFields(Array.from({ length: 5 }, () => ({ n: 1, wire: 0, value: 1n })));
  assert.throws(() => decode(many, 4), /more than 4 fields/);
  assert.equal(decode(many, 5).all(1, 0).length, 5);
  // Too deep: each level one embedded message of the next.
  let nested = encodeFields([{ n: 1, wire: 0, value: 1n }]);
  for (let i = 0; i <= MAX_DEPTH; i++) nested = encodeFields([{ n: 1, wire: 2, value: nested }]);
  let message = decode(nested);
  assert.throws(() => {
    for (;;) message = message.message(1, "level")!;
  }, new RegExp(`nest more than ${MAX_DEPTH} deep`));
});
