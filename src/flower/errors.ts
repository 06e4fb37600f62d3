// The SuperLink's error replies. Flower's API errors travel as JSON in the gRPC status
// details ({"code", "public_message", "public_details"}) or the HTTP body
// ({"code", "detail", "extra"}); codes are flwr.supercore.error.ApiErrorCode.

/** The ApiErrorCodes a node meets (flwr 1.42.0). */
export const ApiErrorCode = {
  PUBLIC_KEY_ALREADY_IN_USE: 23,
  RUNTIME_VERSION_INCOMPATIBLE: 1001,
  FLEET_SUPERNODE_REGISTRATION_DISABLED: 2001,
  FLEET_SUPERNODE_UNREGISTRATION_DISABLED: 2002,
  FLEET_INVALID_HEARTBEAT_INTERVAL: 2003,
  FLEET_NODE_ACTIVATION_FAILED: 2004,
  FLEET_NODE_DEACTIVATION_FAILED: 2005,
  FLEET_NODE_UNREGISTRATION_FAILED: 2006,
  FLEET_RUN_STATUS_NOT_ALLOWED: 2007,
  FLEET_GET_RUN_FAILED: 2008,
  FLEET_GET_FAB_FAILED: 2009,
} as const;

export interface FlowerApiError {
  code: number;
  message: string;
  details?: string;
}

/** Parses a Flower API error from a status detail or body; undefined if it is not one. */
export function parseFlowerApiError(text: string): FlowerApiError | undefined {
  let payload: unknown;
  try {
    payload = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (payload === null || typeof payload !== 'object') return undefined;
  const p = payload as Record<string, unknown>;
  const message = 'public_message' in p ? p.public_message : p.detail;
  const details = 'public_message' in p ? p.public_details : p.extra;
  if (typeof p.code !== 'number' || typeof message !== 'string') return undefined;
  return { code: p.code, message, details: typeof details === 'string' ? details : undefined };
}

/** Node authentication failed: the SuperLink does not accept this node's key. */
export class NodeAuthenticationError extends Error {
  override name = 'NodeAuthenticationError';
}
