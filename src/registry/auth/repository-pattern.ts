/**
 * Repository patterns narrow role grants, robot grants and token scopes below a project.
 * They are globs over full repository names:
 *
 * - `*` matches within one path component (`team-a/*` matches `team-a/app`, not `team-a/app/api`);
 * - `**` matches any number of components; a trailing `/**` also matches the prefix itself
 *   (`team-a/**` matches `team-a`, `team-a/app` and `team-a/app/api`);
 * - `?` matches one character other than `/`.
 *
 * The first component of a pattern is always a literal project name, so that a pattern can be
 * checked against the project it is granted in.
 */

const patternGrammar = /^[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:\/(?:\*\*|[a-z0-9._*?-]+))*$/;
const cache = new Map<string, RegExp>();

/** Why `pattern` is not a valid repository pattern, or undefined when it is. */
export function patternProblem(pattern: string): string | undefined {
  if (pattern.length === 0 || pattern.length > 255) return 'a repository pattern has 1 to 255 characters';
  if (!patternGrammar.test(pattern)) return `invalid repository pattern ${JSON.stringify(pattern)}: lowercase components separated by '/', the first one a literal project name; '*', '**' and '?' allowed after it`;
  if (/\*\*\*/.test(pattern) || /[^/]\*\*|\*\*[^/]/.test(pattern)) return `invalid repository pattern ${JSON.stringify(pattern)}: '**' must be a whole path component`;
  return undefined;
}

/** The project (first component) of a pattern. */
export function patternProject(pattern: string): string {
  const slash = pattern.indexOf('/');
  return slash === -1 ? pattern : pattern.slice(0, slash);
}

function compile(pattern: string): RegExp {
  let source = '';
  const parts = pattern.split('/');
  parts.forEach((part, index) => {
    if (part === '**') {
      // "/**" : zero or more further components.
      source += index === 0 ? '.*' : '(?:/.*)?';
      return;
    }
    if (index > 0) source += '/';
    for (const ch of part) source += ch === '*' ? '[^/]*' : ch === '?' ? '[^/]' : ch.replace(/[.+^${}()|[\]\\-]/g, '\\$&');
  });
  return new RegExp(`^${source}$`);
}

/** True when `repository` matches `pattern`. An invalid pattern matches nothing. */
export function matchesPattern(pattern: string, repository: string): boolean {
  let regex = cache.get(pattern);
  if (!regex) {
    if (patternProblem(pattern) !== undefined) return false;
    regex = compile(pattern);
    if (cache.size > 10_000) cache.clear();
    cache.set(pattern, regex);
  }
  return regex.test(repository);
}

/** True when `repository` matches any of `patterns`. */
export function matchesAny(patterns: readonly string[], repository: string): boolean {
  return patterns.some((pattern) => matchesPattern(pattern, repository));
}
