// Which Flower this node speaks, and how a different SuperLink is noticed.
//
// flwr 1.42.0 has no version handshake that reaches a node: each side may attach
// runtime metadata (flwr-package-name/-version/-component-name, as the Python SuperNode
// does and this node does too), but the SuperLink's Fleet API checks it with
// reject_incompatible=False and, over gRPC, without warning trailers. So a mismatch is
// detected from what the SuperLink does give:
//   1. a RUNTIME_VERSION_INCOMPATIBLE Flower error (code 1001), should a SuperLink be
//      configured to reject, or a `flwr-version-incompatibility-message` trailer that
//      reports a mismatch: both name both versions;
//   2. an UNIMPLEMENTED Fleet method: that SuperLink's Fleet service is not 1.42's;
//   3. the version the SuperLink publishes itself: its HTTP API (same process, `--port`)
//      serves FastAPI's /openapi.json, whose info.version is `flwr.__version__`
//      (`probeSuperLinkVersion`), the one exact check available. FleetNode runs it at
//      start when given the SuperLink's HTTP address.

/** The Flower release this protocol implementation was written and tested against. */
export const PINNED_FLOWER_VERSION = '1.42.0';

/** Runtime metadata keys (flwr.supercore.constant), sent on every call like the Python SuperNode. */
export const RUNTIME_METADATA: Array<[string, string]> = [
  ['flwr-package-name', 'flwr'],
  ['flwr-package-version', PINNED_FLOWER_VERSION],
  ['flwr-component-name', 'SuperNode'],
];
export const VERSION_INCOMPATIBILITY_TRAILER = 'flwr-version-incompatibility-message';

export class FlowerVersionMismatchError extends Error {
  override name = 'FlowerVersionMismatchError';
  constructor(readonly superLinkVersion: string | undefined, detail: string) {
    super(`Flower version mismatch: this node speaks flwr ${PINNED_FLOWER_VERSION}, the SuperLink runs ${superLinkVersion === undefined ? 'another version' : `flwr ${superLinkVersion}`}. ${detail}`.trim());
  }
}

/** The SuperLink's own `flwr.__version__`, from its HTTP API's OpenAPI document. */
export async function probeSuperLinkVersion(httpBaseUrl: string, fetchImpl: typeof fetch = fetch, signal?: AbortSignal): Promise<string> {
  const url = `${httpBaseUrl.replace(/\/$/, '')}/openapi.json`;
  const response = await fetchImpl(url, { signal });
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  const doc = (await response.json()) as { info?: { title?: string; version?: string } };
  if (typeof doc.info?.version !== 'string') throw new Error(`${url} names no version`);
  return doc.info.version;
}

/** Throws FlowerVersionMismatchError unless the SuperLink at `httpBaseUrl` runs the pinned Flower. */
export async function checkSuperLinkVersion(httpBaseUrl: string, pinned = PINNED_FLOWER_VERSION, fetchImpl: typeof fetch = fetch): Promise<string> {
  const version = await probeSuperLinkVersion(httpBaseUrl, fetchImpl);
  if (version !== pinned) {
    throw Object.assign(new FlowerVersionMismatchError(version, `Use a SuperLink of flwr ${pinned}, or update src/flower (npm run flower:proto) and its tests to flwr ${version}.`), {});
  }
  return version;
}
