/** One page as the server returned it. */
export interface Page<T> {
  items: T[];
  /** Cursor of the next page; undefined on the last page. */
  nextCursor: string | undefined;
}

/**
 * A list that fetches pages on demand. Iterate it with `for await` for every item across
 * pages, use {@link Paginator.pages} for whole pages, or step with {@link Paginator.nextItems}.
 */
export class Paginator<T> implements AsyncIterable<T> {
  private cursor: string | undefined;
  private started = false;

  /** @param fetchPage fetches the page after `cursor` (the first page when undefined). */
  constructor(private readonly fetchPage: (cursor: string | undefined) => Promise<Page<T>>) {}

  /** True until the last page has been fetched. */
  get hasNext(): boolean {
    return !this.started || this.cursor !== undefined;
  }

  /** The next page's items; an empty array once there are no more pages. */
  async nextItems(): Promise<T[]> {
    if (!this.hasNext) return [];
    const page = await this.fetchPage(this.cursor);
    this.started = true;
    this.cursor = page.nextCursor || undefined;
    return page.items;
  }

  /** Every remaining page, one array at a time. */
  async *pages(): AsyncGenerator<T[], void, undefined> {
    while (this.hasNext) yield await this.nextItems();
  }

  /** Every remaining item across pages. */
  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    for await (const page of this.pages()) yield* page;
  }

  /** Every remaining item in one array (fetches all pages). */
  async toArray(): Promise<T[]> {
    const all: T[] = [];
    for await (const item of this) all.push(item);
    return all;
  }
}
