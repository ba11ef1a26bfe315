/**
 * Caller roles. A role is carried by the caller's client certificate (a `urn:custody:role:<role>`
 * URI SAN issued by the cluster CA) and checked on every RPC.
 */
export const ROLES = ['payment', 'approver', 'operator', 'admin', 'coordinator', 'node'] as const;

export type Role = (typeof ROLES)[number];

export const ROLE_URI_PREFIX = 'urn:custody:role:';

export function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value);
}
