/**
 * Row normalisation: the `postgres` package and PGlite return some columns in different JS shapes
 * (timestamptz as Date or text, int8 as string, bigint or number). Every store maps its rows through these, so
 * both clients yield the same objects. Arrays are selected as json (`array_to_json(col)`), which both parse.
 *
 * Parameters go the other way with explicit SQL casts (`$1::uuid`, `$2::int`), and as text where the clients
 * could disagree: JSON, timestamps and bytes travel as text (`$3::text::jsonb`, `$4::text::timestamptz`,
 * `decode($5::text, 'base64')`). The double cast matters: a parameter the server describes as jsonb is
 * JSON.stringify'd again by the `postgres` package (a string would be stored as a JSON string), while one
 * described as text passes through both clients untouched.
 */

/** A timestamp as the database returned it. */
export function toDate(value: unknown, column = 'timestamp'): Date {
  if (value instanceof Date) return value;
  if (typeof value === 'string' || typeof value === 'number') {
    // PostgreSQL's text form ("2026-01-02 03:04:05.678+00") parses once it reads as ISO 8601.
    const date = new Date(typeof value === 'string' ? value.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00') : value);
    if (!Number.isNaN(date.getTime())) return date;
  }
  throw new TypeError(`ROW_TYPE: ${column} is not a timestamp: ${String(value)}`);
}

export function toDateOrUndefined(value: unknown, column?: string): Date | undefined {
  return value === null || value === undefined ? undefined : toDate(value, column);
}

/** int4, int8 (string or bigint), float8 or numeric as a JS number. */
export function toNumber(value: unknown, column = 'number'): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  if (typeof value === 'string' && value.trim() !== '') {
    const n = Number(value);
    if (!Number.isNaN(n)) return n;
  }
  throw new TypeError(`ROW_TYPE: ${column} is not a number: ${String(value)}`);
}

export function toNumberOrUndefined(value: unknown, column?: string): number | undefined {
  return value === null || value === undefined ? undefined : toNumber(value, column);
}

export function toBoolean(value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  return value === 't' || value === 'true' || value === 1;
}

export function toStringOrUndefined(value: unknown): string | undefined {
  return value === null || value === undefined ? undefined : String(value);
}

/**
 * A json/jsonb column. Both clients parse json and jsonb, so a string here is a JSON string value and is
 * returned as it is (parsing it again would hide a double-encoded write).
 */
export function toJson<T = unknown>(value: unknown): T {
  return value as T;
}

/** An array read as json (`array_to_json(col)`), so no client-specific array literal parsing is needed. */
export function toStringArray(value: unknown): string[] {
  const parsed = toJson<unknown>(value);
  return Array.isArray(parsed) ? parsed.map(String) : [];
}

/** A timestamp parameter (Date or epoch milliseconds) as ISO text for a `$n::text::timestamptz` cast. */
export function timestampParam(value: Date | number | undefined): string | null {
  if (value === undefined) return null;
  const date = typeof value === 'number' ? new Date(value) : value;
  if (Number.isNaN(date.getTime())) throw new RangeError(`invalid timestamp: ${String(value)}`);
  return date.toISOString();
}

/** A jsonb parameter as text for a `$n::text::jsonb` cast. */
export function jsonParam(value: unknown): string | null {
  return value === undefined ? null : JSON.stringify(value);
}

/** The single row of a statement that must return one. */
export function onlyRow<Row>(rows: readonly Row[], what: string): Row {
  const [row] = rows;
  if (!row) throw new Error(`STORE_NO_ROW: ${what} returned no row`);
  return row;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Ids arrive from URLs and webhooks: anything that is not a UUID is unknown, not a database error. */
export function isUuid(value: string): boolean {
  return UUID.test(value);
}

/** A set of allowed values as one text parameter for `col = ANY(string_to_array($n::text, ','))`. */
export function listParam(values: string | readonly string[] | undefined): string | null {
  if (values === undefined) return null;
  return typeof values === 'string' ? values : values.join(',');
}

/** The SQL literal list of a fixed vocabulary (constants only, never user input). */
export function sqlList(values: readonly string[]): string {
  return values.map((v) => `'${v.replace(/'/g, "''")}'`).join(', ');
}
