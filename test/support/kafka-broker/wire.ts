// Kafka wire primitives for the test broker: big-endian readers and writers, zigzag varints,
// CRC-32C, and RecordBatch v2 (magic 2) decoding and encoding without compression.

/** Reads Kafka protocol primitives from a buffer, front to back. */
export class WireReader {
  private pos = 0;
  readonly buf: Buffer;

  constructor(buf: Buffer) {
    this.buf = buf;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  int8(): number {
    const v = this.buf.readInt8(this.pos);
    this.pos += 1;
    return v;
  }
  int16(): number {
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  int32(): number {
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  uint32(): number {
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  int64(): bigint {
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }
  bool(): boolean {
    return this.int8() !== 0;
  }
  /** A string with an int16 length; -1 is null. */
  string(): string | null {
    const len = this.int16();
    if (len < 0) return null;
    return this.raw(len).toString("utf8");
  }
  /** Bytes with an int32 length; -1 is null. */
  bytes(): Buffer | null {
    const len = this.int32();
    if (len < 0) return null;
    return this.raw(len);
  }
  /** An array with an int32 count; -1 is null. */
  array<T>(item: (r: WireReader) => T): T[] | null {
    const n = this.int32();
    if (n < 0) return null;
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(item(this));
    return out;
  }
  raw(len: number): Buffer {
    if (len > this.remaining) throw new RangeError(`need ${len} bytes, have ${this.remaining}`);
    const v = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return v;
  }
  /** A zigzag varint (records use these). */
  varint(): number {
    return Number(this.varlong());
  }
  varlong(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const byte = this.buf.readUInt8(this.pos++);
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) break;
      shift += 7n;
    }
    return (result >> 1n) ^ -(result & 1n);
  }
  /** Varint-length bytes; -1 is null. */
  varbytes(): Buffer | null {
    const len = this.varint();
    return len < 0 ? null : this.raw(len);
  }
}

/** Builds a Kafka protocol message from primitives. */
export class WireWriter {
  private readonly parts: Buffer[] = [];

  int8(v: number): this {
    const b = Buffer.alloc(1);
    b.writeInt8(v);
    return this.push(b);
  }
  int16(v: number): this {
    const b = Buffer.alloc(2);
    b.writeInt16BE(v);
    return this.push(b);
  }
  int32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32BE(v);
    return this.push(b);
  }
  uint32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v);
    return this.push(b);
  }
  int64(v: bigint | number): this {
    const b = Buffer.alloc(8);
    b.writeBigInt64BE(BigInt(v));
    return this.push(b);
  }
  bool(v: boolean): this {
    return this.int8(v ? 1 : 0);
  }
  string(v: string | null): this {
    if (v === null) return this.int16(-1);
    const b = Buffer.from(v, "utf8");
    return this.int16(b.length).push(b);
  }
  bytes(v: Buffer | null): this {
    if (v === null) return this.int32(-1);
    return this.int32(v.length).push(v);
  }
  array<T>(items: readonly T[] | null, item: (w: WireWriter, v: T) => void): this {
    if (items === null) return this.int32(-1);
    this.int32(items.length);
    for (const v of items) item(this, v);
    return this;
  }
  varlong(v: bigint | number): this {
    let z = BigInt.asUintN(64, (BigInt(v) << 1n) ^ (BigInt(v) >> 63n));
    const out: number[] = [];
    while (z >= 0x80n) {
      out.push(Number(z & 0x7fn) | 0x80);
      z >>= 7n;
    }
    out.push(Number(z));
    return this.push(Buffer.from(out));
  }
  varint(v: number): this {
    return this.varlong(v);
  }
  varbytes(v: Buffer | null): this {
    if (v === null) return this.varint(-1);
    return this.varint(v.length).push(v);
  }
  push(b: Buffer): this {
    this.parts.push(b);
    return this;
  }
  toBuffer(): Buffer {
    return Buffer.concat(this.parts);
  }
}

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32C (Castagnoli), the checksum of RecordBatch v2. */
export function crc32c(buf: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of buf) crc = CRC32C_TABLE[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** One record header; values may be null on the wire. */
export interface WireHeader {
  key: string;
  value: Buffer | null;
}

/** One record as the broker stores it. */
export interface WireRecord {
  timestamp: bigint;
  key: Buffer | null;
  value: Buffer | null;
  headers: WireHeader[];
}

/** A decoded RecordBatch: producer fields (for idempotence) and its records. */
export interface WireBatch {
  attributes: number;
  producerId: bigint;
  producerEpoch: number;
  baseSequence: number;
  records: WireRecord[];
}

/** Thrown when a record set cannot be decoded (answered with CORRUPT_MESSAGE). */
export class CorruptRecordError extends Error {}

/** Decodes every RecordBatch v2 in a produce request's record set. */
export function decodeRecordBatches(set: Buffer): WireBatch[] {
  const r = new WireReader(set);
  const batches: WireBatch[] = [];
  while (r.remaining > 0) {
    if (r.remaining < 61) throw new CorruptRecordError("truncated record batch");
    r.int64(); // base offset: assigned by the broker
    const length = r.int32();
    const body = new WireReader(r.raw(length));
    body.int32(); // partition leader epoch
    const magic = body.int8();
    if (magic !== 2) throw new CorruptRecordError(`record batch magic ${magic}: only v2 (magic 2) is supported`);
    const crc = body.uint32();
    if (crc32c(body.buf.subarray(9)) !== crc) throw new CorruptRecordError("record batch CRC mismatch");
    const attributes = body.int16();
    body.int32(); // last offset delta
    const firstTimestamp = body.int64();
    body.int64(); // max timestamp
    const producerId = body.int64();
    const producerEpoch = body.int16();
    const baseSequence = body.int32();
    const count = body.int32();
    const records: WireRecord[] = [];
    if ((attributes & 0x07) === 0) {
      for (let i = 0; i < count; i++) {
        const rec = new WireReader(body.raw(body.varint()));
        rec.int8(); // record attributes: unused
        const timestamp = firstTimestamp + rec.varlong();
        rec.varint(); // offset delta: records are stored in order
        const key = rec.varbytes();
        const value = rec.varbytes();
        const headers: WireHeader[] = [];
        const headerCount = rec.varint();
        for (let h = 0; h < headerCount; h++) {
          const hk = rec.varbytes();
          headers.push({ key: hk === null ? "" : hk.toString("utf8"), value: rec.varbytes() });
        }
        records.push({ timestamp, key, value, headers });
      }
    }
    batches.push({ attributes, producerId, producerEpoch, baseSequence, records });
  }
  return batches;
}

/** Encodes stored records (consecutive offsets from `baseOffset`) as one RecordBatch v2. */
export function encodeRecordBatch(baseOffset: bigint, records: readonly WireRecord[]): Buffer {
  const first = records[0];
  if (first === undefined) return Buffer.alloc(0);
  let maxTimestamp = first.timestamp;
  const recordsOut = new WireWriter();
  records.forEach((rec, i) => {
    if (rec.timestamp > maxTimestamp) maxTimestamp = rec.timestamp;
    const body = new WireWriter()
      .int8(0)
      .varlong(rec.timestamp - first.timestamp)
      .varint(i)
      .varbytes(rec.key)
      .varbytes(rec.value)
      .varint(rec.headers.length);
    for (const h of rec.headers) body.varbytes(Buffer.from(h.key, "utf8")).varbytes(h.value);
    const encoded = body.toBuffer();
    recordsOut.varint(encoded.length).push(encoded);
  });
  const afterCrc = new WireWriter()
    .int16(0) // attributes: no compression, create time, not transactional
    .int32(records.length - 1)
    .int64(first.timestamp)
    .int64(maxTimestamp)
    .int64(-1n) // producer id
    .int16(-1) // producer epoch
    .int32(-1) // base sequence
    .int32(records.length)
    .push(recordsOut.toBuffer())
    .toBuffer();
  const afterLength = new WireWriter().int32(0).int8(2).uint32(crc32c(afterCrc)).push(afterCrc).toBuffer();
  return new WireWriter().int64(baseOffset).int32(afterLength.length).push(afterLength).toBuffer();
}

/** Wire size of a record, roughly: used to honour fetch max bytes. */
export function approximateSize(rec: WireRecord): number {
  let size = 16 + (rec.key?.length ?? 0) + (rec.value?.length ?? 0);
  for (const h of rec.headers) size += 4 + h.key.length + (h.value?.length ?? 0);
  return size;
}
