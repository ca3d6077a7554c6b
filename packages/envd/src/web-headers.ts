// Node builds its global Headers from undici, and the first use loads all of undici: about 20 ms
// of a fresh envd's first request, more than the request itself. Connect is envd's only user of
// Headers, so this small implementation of the Fetch standard's class stands in for it.

// RFC 9110 token characters; values may not hold CR, LF or NUL.
const NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[\r\n\0]/;

type HeadersInit = ConstructorParameters<typeof Headers>[0];

function checkName(name: string): string {
  if (!NAME.test(name)) throw new TypeError(`invalid header name: ${JSON.stringify(name)}`);
  return name.toLowerCase();
}

function normalizeValue(value: string): string {
  const trimmed = String(value).replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, "");
  if (BAD_VALUE.test(trimmed)) throw new TypeError("invalid header value");
  return trimmed;
}

/** Fetch's Headers: names case-insensitive, values of one name joined by ", ", sorted iteration. */
export class EnvdHeaders implements Headers {
  readonly #values = new Map<string, string>();
  readonly #cookies: string[] = [];

  constructor(init?: HeadersInit) {
    if (init === undefined || init === null) return;
    const pairs =
      Symbol.iterator in Object(init)
        ? (init as Iterable<[string, string]>)
        : Object.entries(init as Record<string, string>);
    for (const pair of pairs) {
      if (pair.length !== 2) throw new TypeError("a header init pair must have two items");
      this.append(pair[0], pair[1]);
    }
  }

  get [Symbol.toStringTag](): string {
    return "Headers";
  }

  append(name: string, value: string): void {
    const key = checkName(name);
    const v = normalizeValue(value);
    if (key === "set-cookie") this.#cookies.push(v);
    const had = this.#values.get(key);
    this.#values.set(key, had === undefined ? v : `${had}, ${v}`);
  }

  set(name: string, value: string): void {
    const key = checkName(name);
    const v = normalizeValue(value);
    if (key === "set-cookie") this.#cookies.splice(0, this.#cookies.length, v);
    this.#values.set(key, v);
  }

  delete(name: string): void {
    const key = checkName(name);
    if (key === "set-cookie") this.#cookies.length = 0;
    this.#values.delete(key);
  }

  get(name: string): string | null {
    return this.#values.get(checkName(name)) ?? null;
  }

  has(name: string): boolean {
    return this.#values.has(checkName(name));
  }

  getSetCookie(): string[] {
    return [...this.#cookies];
  }

  *entries(): IterableIterator<[string, string]> {
    // Code-unit order, as the standard sorts (not the locale's collation).
    for (const key of [...this.#values.keys()].sort()) {
      if (key === "set-cookie") for (const c of this.#cookies) yield [key, c];
      else yield [key, this.#values.get(key) as string];
    }
  }

  *keys(): IterableIterator<string> {
    for (const [key] of this.entries()) yield key;
  }

  *values(): IterableIterator<string> {
    for (const [, value] of this.entries()) yield value;
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }

  forEach(
    callback: (value: string, key: string, parent: Headers) => void,
    thisArg?: unknown,
  ): void {
    for (const [key, value] of this.entries()) callback.call(thisArg, value, key, this);
  }
}

/** Installs EnvdHeaders as the global Headers; called before envd serves anything. */
export function installWebHeaders(): void {
  Object.defineProperty(globalThis, "Headers", {
    value: EnvdHeaders,
    writable: true,
    configurable: true,
  });
}
