// The JavaScript that runs inside every function isolate before the bundle: the web globals a bare
// V8 lacks (console, fetch, Headers, URL, TextEncoder, crypto, timers, ...) and the dispatcher the
// host calls once per batch of invocations. It is baked into a V8 snapshot once per process; host bridges
// are bound afterwards by `__kumoBoot`, because a snapshot cannot hold host functions.

/**
 * Source of the isolate prelude. Plain JavaScript (no backticks or template holes: it lives in a
 * String.raw literal). It defines the globals and `globalThis.__kumoBoot(fetch, timer, clearTimer,
 * random, urlParse, urlSet, done, fail, metaJson)`, which binds the host bridges and returns the
 * dispatcher `{ invokeBatch, takeOutbox, settleFetch, fireTimer, salvage, install }`.
 */
export const preludeSource: string = String.raw`
(function () {
"use strict";
const G = globalThis;
const stringify = JSON.stringify;
const parseJson = JSON.parse;
const MAX_LINES = 1000;
const MAX_LINE_CHARS = 8192;
const JSON_HEADERS = "application/json";

// Host bridges, bound by __kumoBoot (never part of the snapshot).
let host = null;
let meta = null;
let handler = null;

function define(name, value) {
  Object.defineProperty(G, name, { value: value, writable: true, configurable: true, enumerable: false });
}

// ---------------------------------------------------------------------------------------------
// Invocations and logs

const pending = new Map();
// The invocation whose code is running now: set when the host enters the isolate for it (invoke,
// a timer it set, a fetch it made). console.* lines go to it; ctx.log is always exact.
let current = null;

function Invocation(seq, deadline) {
  this.seq = seq;
  this.start = Date.now();
  this.deadline = deadline;
  this.logs = [];
  this.dropped = 0;
  this.done = false;
}

function formatValue(v, seen) {
  switch (typeof v) {
    case "string": return v;
    case "bigint": return String(v) + "n";
    case "symbol": return v.toString();
    case "function": return "[Function: " + (v.name || "anonymous") + "]";
    case "object":
      if (v === null) return "null";
      if (v instanceof Error) return typeof v.stack === "string" && v.stack.indexOf(String(v.message)) >= 0 ? v.stack : String(v) + (typeof v.stack === "string" ? "\n" + v.stack : "");
      try {
        seen = [];
        const s = stringify(v, function (_k, x) {
          if (typeof x === "bigint") return String(x) + "n";
          if (typeof x === "function") return "[Function: " + (x.name || "anonymous") + "]";
          if (typeof x === "symbol") return x.toString();
          if (x !== null && typeof x === "object") {
            if (seen.indexOf(x) >= 0) return "[Circular]";
            seen.push(x);
            if (x instanceof Map) return { "[Map]": Array.from(x.entries()) };
            if (x instanceof Set) return { "[Set]": Array.from(x.values()) };
          }
          return x;
        });
        return s === undefined ? String(v) : s;
      } catch (e) {
        return Object.prototype.toString.call(v);
      }
    default: return String(v);
  }
}

function formatArgs(args) {
  if (args.length === 1 && typeof args[0] === "string") return args[0];
  let out = "";
  for (let i = 0; i < args.length; i++) out += (i === 0 ? "" : " ") + formatValue(args[i]);
  return out;
}

function record(inv, level, args) {
  if (inv === null || inv.done) return;
  if (inv.logs.length >= MAX_LINES) { inv.dropped++; return; }
  let message = formatArgs(args);
  if (message.length > MAX_LINE_CHARS) message = message.slice(0, MAX_LINE_CHARS) + "… (" + (message.length - MAX_LINE_CHARS) + " characters cut)";
  inv.logs.push({ t: Date.now() - inv.start, level: level, message: message });
}

function takeLogs(inv) {
  if (inv.dropped > 0) inv.logs.push({ t: Date.now() - inv.start, level: "warn", message: "… " + inv.dropped + " lines dropped" });
  inv.dropped = 0;
  return inv.logs;
}

function makeLogger(inv) {
  return {
    debug: function () { record(inv, "debug", arguments); },
    info: function () { record(inv, "info", arguments); },
    warn: function () { record(inv, "warn", arguments); },
    error: function () { record(inv, "error", arguments); },
  };
}

function consoleMethod(level) {
  return function () {
    let inv = current;
    if (inv === null || inv.done) {
      // Nothing is attributed: if exactly one invocation is in flight it must be the author.
      if (pending.size !== 1) return;
      inv = pending.values().next().value;
    }
    record(inv, level, arguments);
  };
}

define("console", {
  log: consoleMethod("info"),
  info: consoleMethod("info"),
  warn: consoleMethod("warn"),
  error: consoleMethod("error"),
  debug: consoleMethod("debug"),
  trace: consoleMethod("debug"),
});

// ---------------------------------------------------------------------------------------------
// DOMException, atob/btoa, queueMicrotask, structuredClone

class DOMException extends Error {
  constructor(message, name) {
    super(message === undefined ? "" : String(message));
    Object.defineProperty(this, "name", { value: name === undefined ? "Error" : String(name), configurable: true, writable: true });
  }
}
define("DOMException", DOMException);

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_INDEX = new Int16Array(128).fill(-1);
for (let i = 0; i < 64; i++) B64_INDEX[B64.charCodeAt(i)] = i;

define("btoa", function btoa(data) {
  if (arguments.length === 0) throw new TypeError("btoa requires 1 argument");
  const s = String(data);
  let out = "";
  for (let i = 0; i < s.length; i += 3) {
    const a = s.charCodeAt(i), b = i + 1 < s.length ? s.charCodeAt(i + 1) : -1, c = i + 2 < s.length ? s.charCodeAt(i + 2) : -1;
    if (a > 255 || b > 255 || c > 255) throw new DOMException("btoa: the string contains characters outside of the Latin1 range", "InvalidCharacterError");
    const n = (a << 16) | ((b < 0 ? 0 : b) << 8) | (c < 0 ? 0 : c);
    out += B64[(n >> 18) & 63] + B64[(n >> 12) & 63] + (b < 0 ? "=" : B64[(n >> 6) & 63]) + (c < 0 ? "=" : B64[n & 63]);
  }
  return out;
});

define("atob", function atob(data) {
  if (arguments.length === 0) throw new TypeError("atob requires 1 argument");
  let s = String(data).replace(/[\t\n\f\r ]/g, "");
  if (s.length % 4 === 0) s = s.replace(/==?$/, "");
  if (s.length % 4 === 1 || /[^A-Za-z0-9+/]/.test(s)) throw new DOMException("atob: the string to be decoded is not correctly encoded", "InvalidCharacterError");
  let out = "";
  let bits = 0, acc = 0;
  for (let i = 0; i < s.length; i++) {
    acc = (acc << 6) | B64_INDEX[s.charCodeAt(i)];
    bits += 6;
    if (bits >= 8) { bits -= 8; out += String.fromCharCode((acc >> bits) & 255); }
  }
  return out;
});

define("queueMicrotask", function queueMicrotask(cb) {
  if (typeof cb !== "function") throw new TypeError("queueMicrotask: callback must be a function");
  Promise.resolve().then(cb);
});

function cloneValue(v, seen) {
  if (v === null || (typeof v !== "object" && typeof v !== "function" && typeof v !== "symbol")) return v;
  if (typeof v === "function" || typeof v === "symbol") throw new DOMException(String(typeof v === "function" ? "function " + (v.name || "anonymous") : v.toString()) + " could not be cloned.", "DataCloneError");
  const known = seen.get(v);
  if (known !== undefined) return known;
  let out;
  if (v instanceof Date) out = new Date(v.getTime());
  else if (v instanceof RegExp) out = new RegExp(v.source, v.flags);
  else if (v instanceof ArrayBuffer) out = v.slice(0);
  else if (ArrayBuffer.isView(v)) {
    const buf = cloneValue(v.buffer, seen);
    out = v instanceof DataView ? new DataView(buf, v.byteOffset, v.byteLength) : new v.constructor(buf, v.byteOffset, v.length);
  } else if (v instanceof Map) {
    out = new Map(); seen.set(v, out);
    v.forEach(function (val, key) { out.set(cloneValue(key, seen), cloneValue(val, seen)); });
    return out;
  } else if (v instanceof Set) {
    out = new Set(); seen.set(v, out);
    v.forEach(function (val) { out.add(cloneValue(val, seen)); });
    return out;
  } else if (v instanceof Error) {
    const C = { EvalError: EvalError, RangeError: RangeError, ReferenceError: ReferenceError, SyntaxError: SyntaxError, TypeError: TypeError, URIError: URIError }[v.name] || Error;
    out = new C(v.message);
    if (typeof v.stack === "string") out.stack = v.stack;
  } else if (v instanceof Boolean || v instanceof Number || v instanceof String) out = Object(v.valueOf());
  else if (Array.isArray(v)) {
    out = new Array(v.length); seen.set(v, out);
    for (const k of Object.keys(v)) out[k] = cloneValue(v[k], seen);
    return out;
  } else {
    out = {}; seen.set(v, out);
    for (const k of Object.keys(v)) out[k] = cloneValue(v[k], seen);
    return out;
  }
  seen.set(v, out);
  return out;
}

define("structuredClone", function structuredClone(value) {
  if (arguments.length === 0) throw new TypeError("structuredClone requires 1 argument");
  return cloneValue(value, new Map());
});

// ---------------------------------------------------------------------------------------------
// TextEncoder / TextDecoder (UTF-8 only)

function utf8Encode(input) {
  const s = String(input);
  const out = new Uint8Array(s.length * 3);
  let p = 0;
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) { out[p++] = c; continue; }
    if (c < 0x800) { out[p++] = 0xc0 | (c >> 6); out[p++] = 0x80 | (c & 63); continue; }
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
        out[p++] = 0xf0 | (cp >> 18); out[p++] = 0x80 | ((cp >> 12) & 63); out[p++] = 0x80 | ((cp >> 6) & 63); out[p++] = 0x80 | (cp & 63);
        continue;
      }
    }
    if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
    out[p++] = 0xe0 | (c >> 12); out[p++] = 0x80 | ((c >> 6) & 63); out[p++] = 0x80 | (c & 63);
  }
  return out.slice(0, p);
}

function toBytes(input) {
  if (input === undefined || input === null) return new Uint8Array(0);
  if (input instanceof ArrayBuffer) return new Uint8Array(input);
  if (ArrayBuffer.isView(input)) return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  throw new TypeError("expected an ArrayBuffer or an ArrayBuffer view");
}

function utf8Decode(bytes, fatal, ignoreBOM) {
  const n = bytes.length;
  let i = 0;
  if (!ignoreBOM && n >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) i = 3;
  let out = "";
  const units = [];
  function bad() {
    if (fatal) throw new TypeError("The encoded data was not valid for encoding utf-8");
    units.push(0xfffd);
  }
  while (i < n) {
    const b = bytes[i];
    if (b < 0x80) { units.push(b); i++; }
    else {
      let need = 0, cp = 0, lower = 0x80, upper = 0xbf;
      if (b >= 0xc2 && b <= 0xdf) { need = 1; cp = b & 0x1f; }
      else if (b >= 0xe0 && b <= 0xef) { need = 2; cp = b & 0xf; if (b === 0xe0) lower = 0xa0; if (b === 0xed) upper = 0x9f; }
      else if (b >= 0xf0 && b <= 0xf4) { need = 3; cp = b & 7; if (b === 0xf0) lower = 0x90; if (b === 0xf4) upper = 0x8f; }
      if (need === 0) { bad(); i++; }
      else {
        let j = 1;
        for (; j <= need; j++) {
          if (i + j >= n) break;
          const c = bytes[i + j];
          if (c < lower || c > upper) break;
          lower = 0x80; upper = 0xbf;
          cp = (cp << 6) | (c & 0x3f);
        }
        if (j <= need) { bad(); i += j; }
        else {
          i += need + 1;
          if (cp > 0xffff) { cp -= 0x10000; units.push(0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff)); }
          else units.push(cp);
        }
      }
    }
    if (units.length >= 8192) { out += String.fromCharCode.apply(null, units); units.length = 0; }
  }
  if (units.length > 0) out += String.fromCharCode.apply(null, units);
  return out;
}

function utf8Label(label) {
  const l = label === undefined ? "utf-8" : String(label).trim().toLowerCase();
  if (l !== "utf-8" && l !== "utf8" && l !== "unicode-1-1-utf-8") throw new RangeError("TextDecoder: only utf-8 is supported in isolates, not \"" + l + "\"");
  return "utf-8";
}

class TextEncoder {
  get encoding() { return "utf-8"; }
  encode(input) { return utf8Encode(input === undefined ? "" : input); }
  encodeInto(source, destination) {
    const bytes = utf8Encode(source);
    // Only whole code points are written.
    let written = Math.min(bytes.length, destination.length);
    while (written > 0 && written < bytes.length && (bytes[written] & 0xc0) === 0x80) written--;
    destination.set(bytes.subarray(0, written));
    const read = utf8Decode(bytes.subarray(0, written), false, true).length;
    return { read: read, written: written };
  }
}
define("TextEncoder", TextEncoder);

class TextDecoder {
  constructor(label, options) {
    this._encoding = utf8Label(label);
    this._fatal = !!(options && options.fatal);
    this._ignoreBOM = !!(options && options.ignoreBOM);
  }
  get encoding() { return this._encoding; }
  get fatal() { return this._fatal; }
  get ignoreBOM() { return this._ignoreBOM; }
  decode(input) { return utf8Decode(toBytes(input), this._fatal, this._ignoreBOM); }
}
define("TextDecoder", TextDecoder);

// ---------------------------------------------------------------------------------------------
// crypto (bridged to the host's CSPRNG, pooled to save crossings)

let pool = new Uint8Array(0);
let poolAt = 0;
function randomBytes(n) {
  if (n > 1024) return new Uint8Array(host.random(n));
  if (poolAt + n > pool.length) { pool = new Uint8Array(host.random(4096)); poolAt = 0; }
  const out = pool.subarray(poolAt, poolAt + n);
  poolAt += n;
  return out;
}

const HEX = [];
for (let i = 0; i < 256; i++) HEX.push((i + 0x100).toString(16).slice(1));

const crypto = {
  getRandomValues(array) {
    if (!ArrayBuffer.isView(array) || array instanceof DataView || array instanceof Float32Array || array instanceof Float64Array) {
      throw new DOMException("getRandomValues: the argument must be an integer typed array", "TypeMismatchError");
    }
    if (array.byteLength > 65536) throw new DOMException("getRandomValues: the array is longer than 65536 bytes", "QuotaExceededError");
    new Uint8Array(array.buffer, array.byteOffset, array.byteLength).set(randomBytes(array.byteLength));
    return array;
  },
  randomUUID() {
    const b = randomBytes(16);
    const h = function (i) { return HEX[i === 6 ? (b[6] & 0x0f) | 0x40 : i === 8 ? (b[8] & 0x3f) | 0x80 : b[i]]; };
    return h(0) + h(1) + h(2) + h(3) + "-" + h(4) + h(5) + "-" + h(6) + h(7) + "-" + h(8) + h(9) + "-" + h(10) + h(11) + h(12) + h(13) + h(14) + h(15);
  },
};
define("crypto", crypto);

// ---------------------------------------------------------------------------------------------
// Timers (host timers; the isolate keeps the callbacks)

const timers = new Map();
let timerSeq = 0;

function startTimer(cb, ms, args, repeat) {
  if (typeof cb !== "function") throw new TypeError("setTimeout: callback must be a function (strings are not evaluated)");
  const id = ++timerSeq;
  let delay = Number(ms);
  if (!(delay >= 1)) delay = repeat ? 1 : 0;
  timers.set(id, { cb: cb, args: args, repeat: repeat, owner: current });
  host.timer(id, current === null ? 0 : current.seq, Math.min(delay, 2147483647), repeat);
  return id;
}
function stopTimer(id) {
  if (timers.delete(id)) host.clearTimer(id);
}
define("setTimeout", function setTimeout(cb, ms) { return startTimer(cb, ms, Array.prototype.slice.call(arguments, 2), false); });
define("setInterval", function setInterval(cb, ms) { return startTimer(cb, ms, Array.prototype.slice.call(arguments, 2), true); });
define("clearTimeout", function clearTimeout(id) { stopTimer(id); });
define("clearInterval", function clearInterval(id) { stopTimer(id); });

function fireTimer(id) {
  const t = timers.get(id);
  if (t === undefined) return;
  if (!t.repeat) timers.delete(id);
  current = t.owner !== null && !t.owner.done ? t.owner : null;
  try {
    t.cb.apply(undefined, t.args);
  } catch (err) {
    record(current, "error", ["uncaught exception in a timer callback:", err]);
  }
}

// ---------------------------------------------------------------------------------------------
// Headers

const TOKEN = /^[!#$%&'*+\-.^_|~0-9A-Za-z]+$/;
function headerName(name) {
  const n = String(name);
  if (!TOKEN.test(n)) throw new TypeError("Headers: \"" + n + "\" is not a valid header name");
  return n.toLowerCase();
}
function headerValue(value) {
  const v = String(value).replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, "");
  if (/[\0\r\n]/.test(v)) throw new TypeError("Headers: the value for a header contains a forbidden character");
  return v;
}

class Headers {
  constructor(init) {
    this._map = new Map();
    this._cookies = [];
    if (init === undefined || init === null) return;
    if (init instanceof Headers) { init.forEach((v, k) => this.append(k, v)); for (const c of init._cookies) this._cookies.push(c); return; }
    if (typeof init === "object" && typeof init[Symbol.iterator] === "function") {
      for (const pair of init) {
        const p = Array.from(pair);
        if (p.length !== 2) throw new TypeError("Headers: each header must be a [name, value] pair");
        this.append(p[0], p[1]);
      }
      return;
    }
    if (typeof init === "object") { for (const k of Object.keys(init)) this.append(k, init[k]); return; }
    throw new TypeError("Headers: init must be an object, an array of pairs or a Headers");
  }
  append(name, value) {
    const k = headerName(name), v = headerValue(value);
    if (k === "set-cookie") this._cookies.push(v);
    const cur = this._map.get(k);
    this._map.set(k, cur === undefined ? v : cur + ", " + v);
  }
  set(name, value) {
    const k = headerName(name), v = headerValue(value);
    if (k === "set-cookie") this._cookies = [v];
    this._map.set(k, v);
  }
  get(name) { const v = this._map.get(headerName(name)); return v === undefined ? null : v; }
  has(name) { return this._map.has(headerName(name)); }
  delete(name) { const k = headerName(name); if (k === "set-cookie") this._cookies = []; this._map.delete(k); }
  getSetCookie() { return this._cookies.slice(); }
  forEach(cb, thisArg) { for (const e of this.entries()) cb.call(thisArg, e[1], e[0], this); }
  *entries() {
    const keys = Array.from(this._map.keys()).sort();
    for (const k of keys) {
      if (k === "set-cookie") { for (const c of this._cookies) yield [k, c]; }
      else yield [k, this._map.get(k)];
    }
  }
  *keys() { for (const e of this.entries()) yield e[0]; }
  *values() { for (const e of this.entries()) yield e[1]; }
  [Symbol.iterator]() { return this.entries(); }
}
define("Headers", Headers);

// ---------------------------------------------------------------------------------------------
// URLSearchParams (JS) and URL (bridged to the host's WHATWG parser)

function formDecode(s) {
  if (s.indexOf("%") < 0 && s.indexOf("+") < 0) return s;
  const t = s.replace(/\+/g, " ");
  try { return decodeURIComponent(t); } catch (e) {
    return t.replace(/%([0-9A-Fa-f]{2})/g, function (m, h) { return String.fromCharCode(parseInt(h, 16)); });
  }
}
function formEncode(s) {
  return encodeURIComponent(String(s).toWellFormed()).replace(/%20/g, "+").replace(/[!'()~]/g, function (c) { return "%" + c.charCodeAt(0).toString(16).toUpperCase(); });
}
function parsePairs(s, onPair) {
  if (s.length === 0) return;
  const parts = s.split("&");
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    if (part.length === 0) continue;
    const eq = part.indexOf("=");
    if (eq < 0) onPair(formDecode(part), "");
    else onPair(formDecode(part.slice(0, eq)), formDecode(part.slice(eq + 1)));
  }
}

class URLSearchParams {
  constructor(init) {
    this._list = [];
    this._url = null;
    if (init === undefined || init === null) return;
    if (init instanceof URLSearchParams) { this._list = init._list.map(function (p) { return [p[0], p[1]]; }); return; }
    if (typeof init === "object" && typeof init[Symbol.iterator] === "function") {
      for (const pair of init) {
        const p = Array.from(pair);
        if (p.length !== 2) throw new TypeError("URLSearchParams: each pair must have exactly two elements");
        this._list.push([String(p[0]), String(p[1])]);
      }
      return;
    }
    if (typeof init === "object") { for (const k of Object.keys(init)) this._list.push([k, String(init[k])]); return; }
    const s = String(init);
    this._parse(s.charAt(0) === "?" ? s.slice(1) : s);
  }
  _parse(s) { const list = this._list; parsePairs(s, function (k, v) { list.push([k, v]); }); }
  _update() { if (this._url !== null) this._url._setSearch(this.toString()); }
  get size() { return this._list.length; }
  append(name, value) { this._list.push([String(name), String(value)]); this._update(); }
  delete(name, value) {
    const n = String(name), v = value === undefined ? undefined : String(value);
    this._list = this._list.filter(function (p) { return !(p[0] === n && (v === undefined || p[1] === v)); });
    this._update();
  }
  get(name) { const n = String(name); for (const p of this._list) if (p[0] === n) return p[1]; return null; }
  getAll(name) { const n = String(name); return this._list.filter(function (p) { return p[0] === n; }).map(function (p) { return p[1]; }); }
  has(name, value) { const n = String(name), v = value === undefined ? undefined : String(value); return this._list.some(function (p) { return p[0] === n && (v === undefined || p[1] === v); }); }
  set(name, value) {
    const n = String(name), v = String(value);
    let found = false;
    this._list = this._list.filter(function (p) { if (p[0] !== n) return true; if (found) return false; found = true; p[1] = v; return true; });
    if (!found) this._list.push([n, v]);
    this._update();
  }
  sort() { this._list.sort(function (a, b) { return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0; }); this._update(); }
  toString() { return this._list.map(function (p) { return formEncode(p[0]) + "=" + formEncode(p[1]); }).join("&"); }
  forEach(cb, thisArg) { for (const p of this._list.slice()) cb.call(thisArg, p[1], p[0], this); }
  *entries() { for (const p of this._list.slice()) yield [p[0], p[1]]; }
  *keys() { for (const p of this._list.slice()) yield p[0]; }
  *values() { for (const p of this._list.slice()) yield p[1]; }
  [Symbol.iterator]() { return this.entries(); }
}
define("URLSearchParams", URLSearchParams);

// Host URL parts: [href, origin, protocol, username, password, host, hostname, port, pathname, search, hash]
class URL {
  constructor(url, base) {
    const parts = host.urlParse(String(url), base === undefined ? undefined : String(base));
    if (parts === null) throw new TypeError("Invalid URL: " + String(url) + (base === undefined ? "" : " (base " + String(base) + ")"));
    this._p = parts;
    this._params = null;
  }
  static canParse(url, base) { return host.urlParse(String(url), base === undefined ? undefined : String(base)) !== null; }
  static parse(url, base) { try { return new URL(url, base); } catch (e) { return null; } }
  _change(name, value) {
    this._p = host.urlSet(this._p[0], name, String(value));
    if (this._params !== null && (name === "search" || name === "href")) {
      this._params._list = [];
      this._params._parse(this._p[9].slice(1));
    }
  }
  _setSearch(s) { this._p = host.urlSet(this._p[0], "search", s); }
  get href() { return this._p[0]; }
  set href(v) {
    const parts = host.urlParse(String(v), undefined);
    if (parts === null) throw new TypeError("Invalid URL: " + String(v));
    this._p = parts;
    if (this._params !== null) { this._params._list = []; this._params._parse(this._p[9].slice(1)); }
  }
  get origin() { return this._p[1]; }
  get protocol() { return this._p[2]; }
  set protocol(v) { this._change("protocol", v); }
  get username() { return this._p[3]; }
  set username(v) { this._change("username", v); }
  get password() { return this._p[4]; }
  set password(v) { this._change("password", v); }
  get host() { return this._p[5]; }
  set host(v) { this._change("host", v); }
  get hostname() { return this._p[6]; }
  set hostname(v) { this._change("hostname", v); }
  get port() { return this._p[7]; }
  set port(v) { this._change("port", v); }
  get pathname() { return this._p[8]; }
  set pathname(v) { this._change("pathname", v); }
  get search() { return this._p[9]; }
  set search(v) { this._change("search", v); }
  get hash() { return this._p[10]; }
  set hash(v) { this._change("hash", v); }
  get searchParams() {
    if (this._params === null) { this._params = new URLSearchParams(this._p[9].slice(1)); this._params._url = this; }
    return this._params;
  }
  toString() { return this._p[0]; }
  toJSON() { return this._p[0]; }
}
define("URL", URL);

// ---------------------------------------------------------------------------------------------
// fetch and a minimal Response

class Response {
  constructor(body, init) {
    const i = init || {};
    this._body = body === undefined || body === null ? null : typeof body === "string" ? utf8Encode(body) : toBytes(body);
    this.status = i.status === undefined ? 200 : Number(i.status);
    this.statusText = i.statusText === undefined ? "" : String(i.statusText);
    this.headers = i.headers instanceof Headers ? i.headers : new Headers(i.headers);
    this.ok = this.status >= 200 && this.status <= 299;
    this.url = i.url === undefined ? "" : String(i.url);
    this.redirected = !!i.redirected;
    this.bodyUsed = false;
    if (typeof body === "string" && !this.headers.has("content-type")) this.headers.set("content-type", "text/plain;charset=UTF-8");
  }
  _consume() {
    if (this.bodyUsed) return Promise.reject(new TypeError("Response body has already been read"));
    this.bodyUsed = true;
    return Promise.resolve(this._body === null ? new Uint8Array(0) : this._body);
  }
  arrayBuffer() { return this._consume().then(function (b) { return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength); }); }
  bytes() { return this._consume().then(function (b) { return b.slice(); }); }
  text() { return this._consume().then(function (b) { return utf8Decode(b, false, false); }); }
  json() { return this.text().then(function (t) { return parseJson(t); }); }
  clone() {
    if (this.bodyUsed) throw new TypeError("Response.clone: body has already been read");
    return new Response(this._body === null ? null : this._body.slice(), { status: this.status, statusText: this.statusText, headers: new Headers(this.headers), url: this.url, redirected: this.redirected });
  }
  static json(data, init) {
    const h = new Headers(init && init.headers);
    if (!h.has("content-type")) h.set("content-type", JSON_HEADERS);
    return new Response(stringify(data), { status: init && init.status, statusText: init && init.statusText, headers: h });
  }
}
define("Response", Response);

const fetches = new Map();
let fetchSeq = 0;

function fetchBody(body, headers) {
  if (body === undefined || body === null) return undefined;
  if (typeof body === "string") return body;
  if (body instanceof URLSearchParams) {
    if (!headers.has("content-type")) headers.set("content-type", "application/x-www-form-urlencoded;charset=UTF-8");
    return body.toString();
  }
  if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) return toBytes(body).slice().buffer;
  return String(body);
}

define("fetch", function fetch(input, init) {
  return new Promise(function (resolve, reject) {
    const i = init || {};
    let url;
    if (typeof input === "string") url = input;
    else if (input instanceof URL) url = input.href;
    else if (input !== null && typeof input === "object" && typeof input.url === "string") url = input.url;
    else url = String(input);
    const method = i.method === undefined ? (input && typeof input === "object" && typeof input.method === "string" ? input.method : "GET") : String(i.method).toUpperCase();
    const headers = new Headers(i.headers !== undefined ? i.headers : input && typeof input === "object" && input.headers !== undefined ? input.headers : undefined);
    const body = fetchBody(i.body, headers);
    if (body !== undefined && (method === "GET" || method === "HEAD")) throw new TypeError("fetch: a " + method + " request cannot have a body");
    const id = ++fetchSeq;
    fetches.set(id, { resolve: resolve, reject: reject, owner: current });
    host.fetch(id, current === null ? 0 : current.seq, url, method, Array.from(headers.entries()), body, i.redirect === undefined ? "follow" : String(i.redirect));
  });
});

function settleFetch(id, ok, value) {
  const f = fetches.get(id);
  if (f === undefined) return;
  fetches.delete(id);
  current = f.owner !== null && !f.owner.done ? f.owner : null;
  if (ok) {
    f.resolve(new Response(value.body, { status: value.status, statusText: value.statusText, headers: value.headers, url: value.url, redirected: value.redirected }));
  } else {
    f.reject(new TypeError("fetch failed: " + value));
  }
}

// ---------------------------------------------------------------------------------------------
// The dispatcher

function HttpRequest(input) {
  this.method = input.method;
  this.path = input.path;
  this.query = parseQuery(input.rawQuery);
  this.rawQuery = input.rawQuery;
  this.headers = input.headers;
  this.body = input.body;
}
HttpRequest.prototype.json = function json() { return parseJson(this.body); };

function parseQuery(raw) {
  const q = {};
  if (raw.length === 0) return q;
  parsePairs(raw, function (k, v) {
    if (k === "__proto__") Object.defineProperty(q, k, { value: v, writable: true, enumerable: true, configurable: true });
    else q[k] = v;
  });
  return q;
}

function logStrings(logs) {
  return logs.map(function (l) { return "[" + l.level + "] " + l.message; });
}

function errorResult(inv, status, code, message, stack, outcome) {
  const logs = takeLogs(inv);
  const err = { code: code, message: message, details: [] };
  if (stack !== undefined) err.stack = stack;
  err.logs = logStrings(logs);
  return {
    outcome: outcome, status: status, headers: { "content-type": JSON_HEADERS },
    body: stringify({ error: err }), logs: logs, error: stack === undefined ? message : stack, errorCode: code,
  };
}

function describeThrown(err) {
  if (err instanceof Error) return String(err);
  return formatValue(err);
}

function badResponse(inv, reason) {
  return errorResult(inv, 502, "KUMO_E_BAD_RESPONSE", "function returned a value that cannot be sent as an HTTP response: " + reason +
    ": return a plain object, array, string, number or boolean (sent as JSON), undefined (204), or { status, headers, body }", undefined, "function_error");
}

function toJson(v) {
  let s;
  try { s = stringify(v); } catch (e) { return { error: describeThrown(e) }; }
  if (s === undefined) return { error: "a " + typeof v + " has no JSON form" };
  return { json: s };
}

function isResponseShape(v) {
  if (v === null || typeof v !== "object" || Array.isArray(v) || typeof v.status !== "number") return false;
  for (const k in v) if (k !== "status" && k !== "headers" && k !== "body") return false;
  return true;
}

// Maps a returned { status, headers, body } to a result (success or bad response).
function responseFor(inv, v) {
  {
    const status = v.status;
    if (!Number.isInteger(status) || status < 200 || status > 599) return badResponse(inv, "status " + String(status) + " is not an integer from 200 to 599");
    const headers = {};
    let hasType = false;
    if (v.headers !== undefined && v.headers !== null) {
      if (typeof v.headers !== "object") return badResponse(inv, "headers must be an object of strings");
      const src = v.headers instanceof Headers ? Object.fromEntries(v.headers.entries()) : v.headers;
      for (const k of Object.keys(src)) {
        const hv = src[k];
        if (typeof hv !== "string" && typeof hv !== "number" && typeof hv !== "boolean") return badResponse(inv, "header \"" + k + "\" is a " + typeof hv + ", not a string");
        headers[k] = String(hv);
        if (k.toLowerCase() === "content-type") hasType = true;
      }
    }
    let body = "";
    if (typeof v.body === "string") body = v.body;
    else if (v.body !== undefined && v.body !== null) {
      const j = toJson(v.body);
      if (j.error !== undefined) return badResponse(inv, "body: " + j.error);
      body = j.json;
      if (!hasType) headers["content-type"] = JSON_HEADERS;
    }
    return { outcome: "success", status: status, headers: headers, body: body };
  }
}

// While the host collects the results of a batch (between invokeBatch and takeOutbox, i.e. the
// synchronous run and its microtasks), finished results wait here instead of crossing one by one.
let outbox = null;

function deliver(seq, status, headers, body, logs) {
  if (outbox !== null) outbox.push(seq, status, headers, body, logs);
  else host.done(seq, status, headers, body, logs);
}

function deliverFailure(seq, result) {
  if (outbox !== null) outbox.push(seq, 0, result, null, null);
  else host.fail(seq, result);
}

function settle(inv) {
  pending.delete(inv.seq);
  inv.done = true;
  if (current === inv) current = null;
}

// A failed invocation's whole result goes out as one object (rare path).
function finish(inv, result) {
  if (inv.done) return;
  settle(inv);
  deliverFailure(inv.seq, result);
}

// The common path crosses with primitives only: headers null means JSON, logs null means none.
function finishValue(inv, v) {
  if (inv.done) return;
  let status = 200, headers = null, body;
  try {
    if (v === undefined) { status = 204; headers = {}; body = ""; }
    else if (isResponseShape(v)) {
      const r = responseFor(inv, v);
      if (r.outcome !== "success") { finish(inv, r); return; }
      status = r.status; headers = r.headers; body = r.body;
    } else {
      const j = toJson(v);
      if (j.error !== undefined) { finish(inv, badResponse(inv, j.error)); return; }
      body = j.json;
    }
  } catch (e) {
    finish(inv, badResponse(inv, describeThrown(e)));
    return;
  }
  settle(inv);
  deliver(inv.seq, status, headers, body, inv.logs.length === 0 && inv.dropped === 0 ? null : takeLogs(inv));
}

function finishError(inv, err) {
  if (inv.done) return;
  const stack = err instanceof Error && typeof err.stack === "string" ? err.stack : undefined;
  finish(inv, errorResult(inv, 500, "KUMO_E_FUNCTION_ERROR", "function threw: " + describeThrown(err), stack, "function_error"));
}

function invoke(seq, requestId, deadline, kind, input) {
  const inv = new Invocation(seq, deadline);
  pending.set(seq, inv);
  current = inv;
  let out;
  try {
    const arg = kind === "http" ? new HttpRequest(input) : input;
    const ctx = {
      requestId: requestId, namespace: meta.namespace, function: meta.function, revision: meta.revision,
      deadline: deadline, env: meta.env, log: makeLogger(inv),
    };
    out = handler(arg, ctx);
  } catch (err) {
    finishError(inv, err);
    return;
  }
  if (out !== null && (typeof out === "object" || typeof out === "function") && typeof out.then === "function") {
    Promise.resolve(out).then(function (v) { finishValue(inv, v); }, function (e) { finishError(inv, e); });
  } else {
    finishValue(inv, out);
  }
}

// Runs a batch of invocations, flat: [seq, requestId, deadline, kind, input, seq, ...]. Results
// that settle before the host calls takeOutbox are returned by it, not by host.done.
function invokeBatch(batch) {
  outbox = [];
  for (let i = 0; i < batch.length; i += 5) invoke(batch[i], batch[i + 1], batch[i + 2], batch[i + 3], batch[i + 4]);
}

// Flat [seq, status, headers, body, logs, ...]; status 0 means headers holds a failure result.
function takeOutbox() {
  const o = outbox;
  outbox = null;
  return o === null ? [] : o;
}

// When the host stops the isolate: the invocation that was running, the logs of those in
// flight, and results that finished but were not collected yet.
function salvage(seqs) {
  const logs = {};
  for (const seq of seqs) {
    const inv = pending.get(seq);
    if (inv !== undefined) logs[seq] = takeLogs(inv);
  }
  return { running: current === null || current.done ? 0 : current.seq, logs: logs, outbox: takeOutbox() };
}

function typeName(v) {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  const t = typeof v;
  return (t === "object" || t === "undefined" ? "an " : "a ") + t;
}

// Returns "" when the module's default export is a usable handler, else what is wrong.
function install(ns) {
  let d;
  try {
    if (!("default" in ns)) return "no-default";
    d = ns.default;
  } catch (e) {
    return "the default export could not be read (" + describeThrown(e) + ")";
  }
  if (typeof d !== "function") return "the default export is " + typeName(d) + ", not a function";
  handler = d;
  return "";
}

G.__kumoBoot = function __kumoBoot(fetch, timer, clearTimer, random, urlParse, urlSet, done, fail, metaJson) {
  host = { fetch: fetch, timer: timer, clearTimer: clearTimer, random: random, urlParse: urlParse, urlSet: urlSet, done: done, fail: fail };
  const m = parseJson(metaJson);
  meta = { namespace: m.namespace, function: m.function, revision: m.revision, env: Object.freeze(m.env) };
  delete G.__kumoBoot;
  return { invokeBatch: invokeBatch, takeOutbox: takeOutbox, settleFetch: settleFetch, fireTimer: fireTimer, salvage: salvage, install: install };
};
})();
`;
