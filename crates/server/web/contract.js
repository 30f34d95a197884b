// GENERATED from the Rust sources by crates/server/src/web/contract.rs: do not edit.
// Regenerate: JUMPGATE_UPDATE_CONTRACT=1 cargo test -p jumpgate-server --lib web::contract

/** The `error` codes of the API's JSON error answers (`api_types::ErrorCode`). */
export const ERROR = Object.freeze({
  BAD_REQUEST: 'bad_request',
  UNAUTHORIZED: 'unauthorized',
  MFA_REQUIRED: 'mfa_required',
  RATE_LIMITED: 'rate_limited',
  FORBIDDEN: 'forbidden',
  INSUFFICIENT_SCOPE: 'insufficient_scope',
  MFA_ENROLLMENT_REQUIRED: 'mfa_enrollment_required',
  PASSWORD_CHANGE_REQUIRED: 'password_change_required',
  CSRF: 'csrf',
  NOT_FOUND: 'not_found',
  NO_ROUTE: 'no_route',
  METHOD_NOT_ALLOWED: 'method_not_allowed',
  TOO_LARGE: 'too_large',
  UNSUPPORTED_MEDIA_TYPE: 'unsupported_media_type',
  CONFLICT: 'conflict',
  UNKNOWN_ENDPOINT: 'unknown_endpoint',
  ENDPOINT_OFFLINE: 'endpoint_offline',
  UPGRADE_REQUIRED: 'upgrade_required',
  SHUTTING_DOWN: 'shutting_down',
  UNKNOWN_SESSION: 'unknown_session',
  UNKNOWN_RECORDING: 'unknown_recording',
  RECORDING_DAMAGED: 'recording_damaged',
  INVALID_ENROLLMENT_TOKEN: 'invalid_enrollment_token',
  NAME_TAKEN: 'name_taken',
  PURGE_PROTECTED: 'purge_protected',
  NO_ASSET: 'no_asset',
  INTERNAL: 'internal',
  INVALID_SESSION_KEY: 'invalid_session_key',
  UNKNOWN_QUEUE: 'unknown_queue',
  UNKNOWN_SUPPORT_SESSION: 'unknown_support_session',
  QUEUE_FULL: 'queue_full',
  ALREADY_TAKEN: 'already_taken',
  RIGHT_NOT_GRANTED: 'right_not_granted',
  CUSTOMER_OFFLINE: 'customer_offline',
  INVALID_POLICY: 'invalid_policy',
  INVALID_PACKAGE: 'invalid_package',
  UNKNOWN_PACKAGE: 'unknown_package',
  UNKNOWN_REPORT: 'unknown_report',
  ANALYTICS_UNAVAILABLE: 'analytics_unavailable',
  SMTP_FAILED: 'smtp_failed',
  UNKNOWN_ALERT_RULE: 'unknown_alert_rule',
});

/** Permission names (`rbac::Permission`), in the gateway's order. */
export const PERMISSIONS = Object.freeze([
  'view',
  'shell',
  'exec',
  'files',
  'forward',
  'manage-users',
  'manage-endpoints',
  'view-audit',
  'vault-read',
  'vault-checkout',
  'vault-write',
  'vault-purge',
  'desktop-view',
  'desktop-control',
  'support',
  'monitor-sessions',
  'epm-manage',
  'epm-approve',
  'reports-read',
  'manage-alerts',
  'manage-webhooks',
]);

/** Each permission by name: `PERMISSION.MANAGE_USERS` is `'manage-users'`. */
export const PERMISSION = Object.freeze({
  VIEW: 'view',
  SHELL: 'shell',
  EXEC: 'exec',
  FILES: 'files',
  FORWARD: 'forward',
  MANAGE_USERS: 'manage-users',
  MANAGE_ENDPOINTS: 'manage-endpoints',
  VIEW_AUDIT: 'view-audit',
  VAULT_READ: 'vault-read',
  VAULT_CHECKOUT: 'vault-checkout',
  VAULT_WRITE: 'vault-write',
  VAULT_PURGE: 'vault-purge',
  DESKTOP_VIEW: 'desktop-view',
  DESKTOP_CONTROL: 'desktop-control',
  SUPPORT: 'support',
  MONITOR_SESSIONS: 'monitor-sessions',
  EPM_MANAGE: 'epm-manage',
  EPM_APPROVE: 'epm-approve',
  REPORTS_READ: 'reports-read',
  MANAGE_ALERTS: 'manage-alerts',
  MANAGE_WEBHOOKS: 'manage-webhooks',
});

/** Session kinds (`proto::session::SessionKind`). */
export const SESSION_KIND = Object.freeze({
  SHELL: 'shell',
  EXEC: 'exec',
  UPLOAD: 'upload',
  DOWNLOAD: 'download',
  FORWARD: 'forward',
  DESKTOP: 'desktop',
});

/** Session message types (`proto::session::SessionMsg`): the first byte of a message. */
export const MSG_TYPE = Object.freeze({
  OPEN: 1,
  ACCEPTED: 2,
  REFUSED: 3,
  STDIN: 4,
  STDOUT: 5,
  STDERR: 6,
  RESIZE: 7,
  EXIT: 8,
  STDIN_EOF: 9,
  SIGNAL: 10,
  FILE_DATA: 11,
  FILE_END: 12,
  FILE_RESULT: 13,
  CLOSED: 14,
  DESKTOP_INFO: 15,
  VIDEO: 16,
  CURSOR: 17,
  CURSOR_SHAPE: 18,
  POINTER: 19,
  WHEEL: 20,
  KEY: 21,
  INPUT_RESET: 22,
  CLIPBOARD: 23,
  DESKTOP_COMMAND: 24,
  FRAME_ACK: 25,
  CONTROL_STATE: 26,
  PING: 27,
  PONG: 28,
});

/** The message types whose payload is JSON (the others carry raw bytes). */
export const JSON_MSG_TYPES = Object.freeze([MSG_TYPE.OPEN, MSG_TYPE.ACCEPTED, MSG_TYPE.REFUSED, MSG_TYPE.EXIT, MSG_TYPE.FILE_END, MSG_TYPE.FILE_RESULT, MSG_TYPE.CLOSED, MSG_TYPE.DESKTOP_INFO, MSG_TYPE.DESKTOP_COMMAND, MSG_TYPE.CONTROL_STATE]);

/** Why the endpoint refused a session (`proto::session::RefusalCode`). */
export const REFUSAL_CODE = Object.freeze({
  NOT_FOUND: 'not-found',
  PERMISSION_DENIED: 'permission-denied',
  INVALID_REQUEST: 'invalid-request',
  CONNECT_FAILED: 'connect-failed',
  UNSUPPORTED: 'unsupported',
  FAILED: 'failed',
  CONSENT_DENIED: 'consent-denied',
});

/** Whose input reaches a desktop (`proto::desktop::InputState`). */
export const INPUT_STATE = Object.freeze({
  ALLOWED: 'allowed',
  VIEW_ONLY: 'view-only',
  TAKEN_BACK: 'taken-back',
  ENDED: 'ended',
});

/** What a control state is besides a change of control (`proto::desktop::ControlNote`). */
export const CONTROL_NOTE = Object.freeze({
  FAILED: 'failed',
  REFUSED: 'refused',
});

/** The screen codecs, best first (`proto::desktop::codec::ALL`): what the console's decoder
 * draws (reduced-size pictures included), offered when it opens a desktop session. */
export const DESKTOP_CODECS = Object.freeze(['jumpgate-2', 'jumpgate-1']);

/** Session message framing (`proto::session`). */
export const SESSION_HEADER_LEN = 5;
export const SESSION_MAX_PAYLOAD = 1048576;
export const SESSION_CHUNK = 32768;

/** The header a cookie session's state-changing requests carry. */
export const CSRF_HEADER = 'x-csrf-token';

/** The `Upgrade:` token of `jg`'s session connections. */
export const SESSION_UPGRADE = 'jumpgate-session/1';
