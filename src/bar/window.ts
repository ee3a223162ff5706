/**
 * The BAR window: which blob sits at which page. Placements come from RESOURCE_MAP_BLOB (guest
 * controlled), so every one is validated: page-aligned, non-empty, inside the window, and not
 * overlapping another. Lookup by page is O(1) (one owner word per page) because it is on the
 * fault path.
 */
import type { RangeId } from '../platform/ports.js';

export const BAR_PAGE = 4096;

export interface Placement {
  readonly id: number;
  /** First BAR page index and page count. */
  readonly firstPage: number;
  readonly pages: number;
  /** The helper range (the back-end's mmap of the BO) and the range page behind firstPage. */
  readonly range: RangeId;
  readonly pageInRange: number;
}

export class PlacementError extends Error {
  constructor(readonly reason: 'unaligned' | 'empty' | 'outside' | 'overlap' | 'unknown', message: string) {
    super(message);
    this.name = 'PlacementError';
  }
}

export class BarWindow {
  private readonly owner: Int32Array;
  private readonly byId = new Map<number, Placement>();
  private nextId = 1;

  constructor(readonly base: number, readonly pages: number) {
    if (base % BAR_PAGE !== 0 || pages <= 0) throw new RangeError('BAR window must be page aligned and non-empty');
    this.owner = new Int32Array(pages);
  }

  get size(): number {
    return this.pages * BAR_PAGE;
  }

  place(offset: number, size: number, range: RangeId, pageInRange = 0): Placement {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(size) || offset % BAR_PAGE !== 0 || size % BAR_PAGE !== 0) {
      throw new PlacementError('unaligned', `placement ${offset}+${size} is not page aligned`);
    }
    if (size <= 0) throw new PlacementError('empty', 'placement of zero size');
    if (offset < 0 || offset + size > this.size) throw new PlacementError('outside', `placement ${offset}+${size} outside the ${this.size}-byte BAR`);
    const first = offset / BAR_PAGE;
    const pages = size / BAR_PAGE;
    for (let p = first; p < first + pages; p++) {
      if (this.owner[p] !== 0) throw new PlacementError('overlap', `placement ${offset}+${size} overlaps blob placement ${this.owner[p]}`);
    }
    const pl: Placement = { id: this.nextId++, firstPage: first, pages, range, pageInRange };
    this.owner.fill(pl.id, first, first + pages);
    this.byId.set(pl.id, pl);
    return pl;
  }

  remove(id: number): Placement {
    const pl = this.byId.get(id);
    if (!pl) throw new PlacementError('unknown', `no placement ${id}`);
    this.owner.fill(0, pl.firstPage, pl.firstPage + pl.pages);
    this.byId.delete(id);
    return pl;
  }

  /** The placement holding BAR page `page`, if any. */
  at(page: number): Placement | undefined {
    const id = this.owner[page] ?? 0;
    return id === 0 ? undefined : this.byId.get(id);
  }

  placements(): Placement[] {
    return [...this.byId.values()];
  }
}
