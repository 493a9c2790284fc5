// oidc-provider ships no type declarations; the tests use it through their own small interfaces.
declare module 'oidc-provider' {
  const Provider: any;
  export default Provider;
}
