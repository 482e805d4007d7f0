// The public surface of @e2ekv/protocol, listed name by name. SPEC.md is the
// specification each of these implements.

export { E2ekvError, ErrorCodes, errorCategory, isE2ekvError, isErrorCode } from './errors.js';
export type { E2ekvErrorOptions, ErrorCategory, ErrorCode } from './errors.js';

export {
  ByteReader,
  ByteWriter,
  MAX_I64,
  MAX_U64,
  bytesEqual,
  compareBytes,
  concatBytes,
  constantTimeEqual,
  fromBase64,
  fromBase64Url,
  fromHex,
  fromUtf8,
  toBase64,
  toBase64Url,
  toHex,
  utf8,
  wipe,
} from './bytes.js';
export { LIMITS } from './limits.js';

export {
  ED25519_PUBLIC_KEY_LENGTH,
  ED25519_SEED_LENGTH,
  ED25519_SIGNATURE_LENGTH,
  assertEnrollableEd25519Key,
  defaultEd25519,
  ed25519PublicKeyFromSeed,
  ed25519Signer,
  ed25519Verify,
  tweetnaclEd25519,
  webCryptoEd25519,
} from './crypto/ed25519.js';
export type { Ed25519Backend, Ed25519Signer } from './crypto/ed25519.js';
export { HmacSha256, SHA256_LENGTH, hmacSha256, sha256, sha256Parts } from './crypto/sha256.js';
export { randomBytes } from './crypto/random.js';
export {
  EPOCH_SECRET_LENGTH,
  KDF_LABELS,
  VAULT_ID_LENGTH,
  deriveBlindingKey,
  deriveEpochCheck,
  deriveValueKey,
} from './crypto/kdf.js';
export { BLINDED_KEY_LENGTH, KeyNameBlinder, encodeKeyName } from './crypto/blind.js';
export { padme } from './crypto/pad.js';
export {
  WRAP_OVERHEAD,
  X25519_KEY_LENGTH,
  newEphemeralKeyPair,
  unwrapSecret,
  wrapSecret,
  x25519PublicKey,
} from './crypto/wrap.js';
export type { WrapContext, X25519KeyPair } from './crypto/wrap.js';

export {
  IDENTITY_STRING_LENGTH,
  IDENTITY_STRING_PREFIX,
  formatIdentityString,
  identityFingerprint,
  parseIdentityString,
} from './identity-string.js';
export type { PublicDeviceKeys } from './identity-string.js';

export {
  ENVELOPE_VERSION,
  EnvelopePurpose,
  MIN_ENVELOPE_LENGTH,
  NO_BLINDED_KEY,
  envelopeBindingHash,
  envelopeLength,
  openEnvelope,
  sealEnvelope,
} from './envelope.js';
export type { EnvelopeBinding } from './envelope.js';

export {
  EPOCH_WRAP_LENGTH,
  EntryType,
  ROLE_CODES,
  ValueKind,
  decodeEntry,
  decodeEntryMeta,
  decodeItemPayload,
  encodeEntry,
  encodeEntryMeta,
  encodeItemPayload,
} from './entry.js';
export type {
  CausalContext,
  ContextEntry,
  DataEntry,
  Entry,
  EntryHeader,
  EntryItem,
  EntryMeta,
  EpochEntry,
  EpochRecipient,
  HybridClock,
  ItemPayload,
  MembershipChange,
  MembershipEntry,
  Role,
  ValueRef,
} from './entry.js';

export { EPOCH_WRAP_LABEL, epochWrapContext, openEpochRecord, sealEpochRecord } from './epoch.js';
export type { SealEpochRecordOptions } from './epoch.js';

export {
  INVITATION_TOKEN_PREFIX,
  INVITATION_WRAP_LABEL,
  MAX_INVITATION_SECRETS,
  createInvitation,
  openInvitation,
  readInvitation,
} from './invitation.js';
export type { CreateInvitationOptions, EpochSecret, InvitationInfo, OpenedInvitation } from './invitation.js';

export {
  GENESIS_NONCE_LENGTH,
  SIGNED_GENESIS_LENGTH,
  encodeGenesisBody,
  signGenesis,
  vaultIdOf,
  verifyGenesis,
} from './genesis.js';
export type { Genesis, VerifiedGenesis } from './genesis.js';

export {
  EMPTY_ROOT,
  HASH_LENGTH,
  MerkleTree,
  consistencyProofLength,
  inclusionProofLength,
  leafHash,
  nodeHash,
  rootFromInclusionProof,
  rootFromLeafHashes,
  verifyConsistency,
  verifyInclusion,
} from './merkle.js';

export {
  MAX_KEY_NAME_BYTES,
  MAX_NOTE_BYTES,
  MAX_NOTE_SIGNATURES,
  NOTE_SIG_COSIGNATURE_V1,
  NOTE_SIG_ED25519,
  addNoteSignatures,
  addParsedNoteSignatures,
  ed25519NoteSigner,
  ed25519NoteVerifier,
  formatNote,
  formatVerifierKey,
  isValidKeyName,
  noteKeyId,
  parseNote,
  parseVerifierKey,
  signNote,
  verifierFromVkey,
  verifyNote,
  verifyParsedNote,
} from './note.js';
export type { Note, NoteSignature, NoteSigner, NoteVerifier, VerifierKey } from './note.js';

export {
  CHECKPOINT_ROOT_LENGTH,
  COSIGNATURE_V1_LENGTH,
  checkCheckpointProgress,
  cosignatureMessage,
  cosignatureSigner,
  cosignatureVerifier,
  cosignatureVerifierFromVkey,
  cosignerKeyId,
  deviceCheckpointSigner,
  formatCheckpoint,
  formatCosignerVkey,
  logOrigin,
  parseCheckpoint,
  parseCosignerVkey,
  parseLogOrigin,
  signDeviceCheckpoint,
  verifyCosignedCheckpoint,
  verifyDeviceCheckpoint,
  verifyParsedCosignedCheckpoint,
  verifyParsedDeviceCheckpoint,
} from './checkpoint.js';
export type { Checkpoint, Cosigner, CosignatureVerifier, PinnedCheckpoint, VerifiedCheckpoint } from './checkpoint.js';

export {
  MAX_BATCH_ITEMS,
  encodeAppendRequest,
  encodeCreateVaultRequest,
  encodeEntriesResponse,
  encodeVaultStateResponse,
  parseAppendRequest,
  parseAppendResponse,
  parseCreateVaultRequest,
  parseEntriesResponse,
  parseVaultStateResponse,
} from './messages.js';
export type {
  AppendRequest,
  AppendResponse,
  CreateVaultRequest,
  EntriesResponse,
  ErrorBody,
  VaultStateResponse,
} from './messages.js';

export {
  AUTH_SCHEME,
  REQUEST_NONCE_LENGTH,
  formatAuthorization,
  parseAuthorization,
  requestSignatureInput,
  signRequest,
} from './request.js';
export type { RequestAuthorization, RequestToSign } from './request.js';
