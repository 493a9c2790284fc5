import { RegistryError } from './errors.ts';

/**
 * Maximum repository name length, slashes included. The spec's implementers note is about
 * clients limiting `host[:port]/name` to 255 characters; a registry cannot know every host
 * name clients use for it, so, like distribution, it limits the name alone.
 */
export const maxNameLength = 255;

// Distribution spec: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
const nameGrammar = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const tagGrammar = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

/** True when `name` is a valid repository name. The grammar alone rules out `..`, `//`, `%2e` and absolute paths. */
export function isRepositoryName(name: string): boolean {
  return name.length > 0 && name.length <= maxNameLength && nameGrammar.test(name);
}

/** @throws RegistryError NAME_INVALID */
export function assertRepositoryName(name: string): void {
  if (!isRepositoryName(name)) {
    throw new RegistryError('NAME_INVALID', `invalid repository name ${JSON.stringify(name.slice(0, 300))}`, {
      detail: { name: name.slice(0, 300), rule: `lowercase path components [a-z0-9] joined by '.', '_', '__' or '-', separated by '/', at most ${maxNameLength} characters` },
    });
  }
}

export function isTag(value: string): boolean {
  return tagGrammar.test(value);
}

/** The project of a repository is its first path component (`team-a/app` -> `team-a`). */
export function projectOf(repository: string): string {
  const slash = repository.indexOf('/');
  return slash === -1 ? repository : repository.slice(0, slash);
}
