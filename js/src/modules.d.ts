// Made by build.mjs: elkjs's worker script, gzip-compressed, as base64 text.
declare module "elk-worker-source" {
  const gzipBase64: string;
  export default gzipBase64;
}
