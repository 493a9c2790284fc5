import { parseDigest } from '../../oci/digest.ts';
import { RegistryError } from '../../oci/errors.ts';
import { MediaType } from '../../oci/media-types.ts';
import type { MetadataStore, Page } from '../storage/ports.ts';

export interface ListingOptions {
  defaultPageSize: number;
  maxPageSize: number;
}

export interface ListPage {
  items: string[];
  /** The `Link` header for the next page, when there is one. */
  link: string | undefined;
}

/** Tag and catalog listings (from the metadata store, in byte order) and the referrers index. */
export class ListingService {
  readonly #meta: MetadataStore;
  readonly #options: ListingOptions;

  constructor(deps: { meta: MetadataStore }, options: ListingOptions) {
    this.#meta = deps.meta;
    this.#options = options;
  }

  #pageSize(n: string | undefined): number {
    if (n === undefined || n === '') return this.#options.defaultPageSize;
    if (!/^\d+$/.test(n)) throw new RegistryError('PAGINATION_INVALID', `n must be a non-negative integer, not ${JSON.stringify(n.slice(0, 50))}`);
    return Math.min(Number(n), this.#options.maxPageSize);
  }

  async tags(repository: string, n: string | undefined, last: string | undefined): Promise<ListPage> {
    const size = this.#pageSize(n);
    if (!(await this.#meta.repositoryExists(repository))) throw new RegistryError('NAME_UNKNOWN', `repository ${repository} is not known`, { detail: { name: repository } });
    if (size === 0) return { items: [], link: undefined };
    return toListPage(await this.#meta.listTags(repository, size, last), `/v2/${repository}/tags/list`, size);
  }

  /**
   * A page of repository names; with `visible`, only those the caller may see (the page is
   * filled from further store pages, so a page has `n` names unless the listing ends).
   */
  async catalog(n: string | undefined, last: string | undefined, visible?: (repository: string) => Promise<boolean>): Promise<ListPage> {
    const size = this.#pageSize(n);
    if (size === 0) return { items: [], link: undefined };
    if (!visible) return toListPage(await this.#meta.listRepositories(size, last), '/v2/_catalog', size);
    const items: string[] = [];
    let cursor = last;
    for (;;) {
      const page = await this.#meta.listRepositories(size, cursor);
      for (const name of page.items) {
        if (!(await visible(name))) continue;
        if (items.length === size) return toListPage({ items, more: true }, '/v2/_catalog', size);
        items.push(name);
      }
      cursor = page.items[page.items.length - 1];
      if (!page.more || cursor === undefined) return toListPage({ items, more: false }, '/v2/_catalog', size);
    }
  }

  /** The referrers of `subject` as an OCI image index (never 404, per the spec). */
  async referrers(repository: string, subjectParam: string, artifactType: string | undefined): Promise<{ index: object; filtered: boolean }> {
    const { digest } = parseDigest(subjectParam);
    const records = await this.#meta.listReferrers(repository, digest, artifactType || undefined);
    return {
      filtered: !!artifactType,
      index: {
        schemaVersion: 2,
        mediaType: MediaType.ociIndex,
        manifests: records.map((r) => ({
          mediaType: r.mediaType,
          digest: r.digest,
          size: r.size,
          ...(r.artifactType ? { artifactType: r.artifactType } : {}),
          ...(r.annotations ? { annotations: r.annotations } : {}),
        })),
      },
    };
  }
}

function toListPage(page: Page<string>, path: string, size: number): ListPage {
  const last = page.items[page.items.length - 1];
  const link = page.more && last !== undefined ? `<${path}?n=${size}&last=${encodeURIComponent(last)}>; rel="next"` : undefined;
  return { items: page.items, link };
}
