/**
 * Whole-registry consistency checks for fault and garbage-collection tests, through the HTTP API
 * (what a client can see) and, for the blob files, the data directory itself.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type Client, MT, sha256 } from './http-target.ts';

const manifestAccept = [MT.manifest, MT.index, MT.dockerManifest, 'application/vnd.docker.distribution.manifest.list.v2+json'].join(', ');

/**
 * `reference` of `repository` is a manifest whose bytes hash to its digest, and every blob it
 * references (recursively through an index) is readable with bytes that hash to its digest.
 * Returns the manifest digest.
 */
export async function assertPullable(client: Client, repository: string, reference: string): Promise<string> {
  const res = await client.get(`/v2/${repository}/manifests/${reference}`, { headers: { Accept: manifestAccept } });
  assert.equal(res.status, 200, `${repository}:${reference} does not resolve: ${res.describe()}`);
  const digest = sha256(res.body);
  assert.equal(res.header('docker-content-digest'), digest, `${repository}:${reference}: served bytes do not hash to the digest`);
  if (reference.includes(':')) assert.equal(digest, reference);
  const doc = res.json() as { config?: { digest: string }; layers?: Array<{ digest: string }>; manifests?: Array<{ digest: string }> };
  for (const blob of [...(doc.config ? [doc.config] : []), ...(doc.layers ?? [])]) await assertBlobIntact(client, repository, blob.digest);
  for (const child of doc.manifests ?? []) await assertPullable(client, repository, child.digest);
  return digest;
}

/** The blob is visible and its bytes hash to its digest. */
export async function assertBlobIntact(client: Client, repository: string, digest: string): Promise<void> {
  const res = await client.get(`/v2/${repository}/blobs/${digest}`);
  assert.equal(res.status, 200, `blob ${digest} of ${repository} is missing: ${res.describe()}`);
  assert.equal(sha256(res.body), digest, `blob ${digest} of ${repository} has other content`);
}

/** Every repository of the catalog and every tag of each (following pagination). */
export async function listAllTags(client: Client): Promise<Array<{ repository: string; tag: string }>> {
  const repositories: string[] = [];
  for (let path: string | undefined = '/v2/_catalog?n=100'; path; ) {
    const res = await client.get(path);
    assert.equal(res.status, 200, res.describe());
    repositories.push(...((res.json().repositories as string[]) ?? []));
    path = nextLink(client, res.header('link'), path);
  }
  const all: Array<{ repository: string; tag: string }> = [];
  for (const repository of repositories) {
    for (let path: string | undefined = `/v2/${repository}/tags/list?n=100`; path; ) {
      const res = await client.get(path);
      assert.equal(res.status, 200, res.describe());
      for (const tag of (res.json().tags as string[] | null) ?? []) all.push({ repository, tag });
      path = nextLink(client, res.header('link'), path);
    }
  }
  return all;
}

function nextLink(client: Client, link: string | undefined, requestPath: string): string | undefined {
  const match = link && /<([^>]+)>;\s*rel="?next"?/.exec(link);
  return match ? client.pathOf(match[1]!, requestPath) : undefined;
}

/** Every tag of the registry is pullable (see {@link assertPullable}); returns how many there are. */
export async function assertEveryTagPullable(client: Client): Promise<number> {
  const tags = await listAllTags(client);
  for (const { repository, tag } of tags) await assertPullable(client, repository, tag);
  return tags.length;
}

/** Every committed blob file of a filesystem blob store hashes to its name: no torn blob. */
export async function assertBlobFilesIntact(dataDir: string): Promise<number> {
  const root = join(dataDir, 'blobs', 'sha256');
  let count = 0;
  for (const prefix of await readdir(root).catch(() => [] as string[])) {
    for (const name of await readdir(join(root, prefix))) {
      const hash = createHash('sha256');
      for await (const chunk of createReadStream(join(root, prefix, name))) hash.update(chunk as Buffer);
      assert.equal(hash.digest('hex'), name, `blob file ${prefix}/${name} does not hash to its name`);
      count++;
    }
  }
  return count;
}

/** Names of the upload sessions' partial-data files. */
export async function uploadFiles(dataDir: string): Promise<string[]> {
  return readdir(join(dataDir, 'uploads')).catch(() => []);
}
