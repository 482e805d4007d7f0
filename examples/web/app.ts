/**
 * The vault browser: a page that holds one device's keys, sealed under a
 * passphrase in localStorage, and decrypts its vault here and nowhere else. The
 * replica (reached through this page's own origin) sees only what the SDK sends:
 * ciphertext, blinded key ids and signatures.
 *
 * Every key name and value reaches the DOM through textContent or a form
 * field's value, never through HTML: a value is data someone else may have
 * written, and markup in it must stay text. The page's CSP (Trusted Types)
 * makes innerHTML throw, so a slip would fail loudly rather than run.
 */
import {
  SCRYPT_DEFAULT,
  createClient,
  createIdentity,
  isE2ekvError,
  openIndexedDbLocalStore,
  openKeystore,
  publicIdentity,
  sealKeystore,
  type KeystoreContents,
  type Vault,
} from 'e2ekv';
import {
  Problem,
  checkNewPassphrase,
  formatAccess,
  formatDevice,
  generatePassphrase,
  parseAccess,
  parseDevice,
  parseInput,
  renderValue,
  toHex,
  type InputType,
} from './format.js';

/** Where the sealed keystore rests. */
const KEYSTORE_KEY = 'e2ekv-keystore';
/**
 * The local replica (IndexedDB): ciphertext and signed checkpoints only, like a
 * replica's disk. It keeps what this device verified across Locks and reloads,
 * so a replica cannot show a freshly unlocked page an older vault.
 */
const LOCAL_REPLICA_DB = 'e2ekv-web-local';
/** The name of the page's one vault inside its keystore. */
const VAULT_NAME = 'web';
/** Held while a vault is open, so that two tabs never write this device's log at once. */
const DEVICE_LOCK = 'e2ekv-device';

type Role = Parameters<Vault['addMember']>[1];

function element<T extends HTMLElement>(id: string, type: { new (): T; prototype: T }): T {
  const found = document.getElementById(id);
  if (!(found instanceof type)) throw new Error(`the page has no #${id} of the expected kind`);
  return found;
}

const ui = {
  lock: element('lock', HTMLButtonElement),
  alarm: element('alarm', HTMLDivElement),
  alarmText: element('alarm-text', HTMLParagraphElement),
  alarmDismiss: element('alarm-dismiss', HTMLButtonElement),
  status: element('status', HTMLParagraphElement),
  progress: element('progress', HTMLProgressElement),
  setup: element('setup', HTMLElement),
  setupForm: element('setup-form', HTMLFormElement),
  newPassphrase: element('new-passphrase', HTMLInputElement),
  generate: element('generate', HTMLButtonElement),
  create: element('create', HTMLButtonElement),
  joinAccess: element('join-access', HTMLTextAreaElement),
  join: element('join', HTMLButtonElement),
  unlock: element('unlock', HTMLElement),
  unlockForm: element('unlock-form', HTMLFormElement),
  passphrase: element('passphrase', HTMLInputElement),
  forget: element('forget', HTMLButtonElement),
  pending: element('pending', HTMLElement),
  pendingVaultId: element('pending-vault-id', HTMLElement),
  pendingDevice: element('pending-device', HTMLTextAreaElement),
  retry: element('retry', HTMLButtonElement),
  vault: element('vault', HTMLElement),
  vaultId: element('vault-id', HTMLElement),
  deviceId: element('device-id', HTMLElement),
  keyCount: element('key-count', HTMLSpanElement),
  prefix: element('prefix', HTMLInputElement),
  sync: element('sync', HTMLButtonElement),
  keys: element('keys', HTMLUListElement),
  detail: element('detail', HTMLDivElement),
  detailKey: element('detail-key', HTMLHeadingElement),
  detailKind: element('detail-kind', HTMLParagraphElement),
  detailValue: element('detail-value', HTMLPreElement),
  siblings: element('siblings', HTMLDivElement),
  siblingsTitle: element('siblings-title', HTMLHeadingElement),
  siblingList: element('sibling-list', HTMLOListElement),
  delete: element('delete', HTMLButtonElement),
  setForm: element('set-form', HTMLFormElement),
  setKey: element('set-key', HTMLInputElement),
  setValue: element('set-value', HTMLTextAreaElement),
  setType: element('set-type', HTMLSelectElement),
  ownDevice: element('own-device', HTMLTextAreaElement),
  addForm: element('add-form', HTMLFormElement),
  addDevice: element('add-device', HTMLTextAreaElement),
  addRole: element('add-role', HTMLSelectElement),
  export: element('export', HTMLDetailsElement),
  showAccess: element('show-access', HTMLButtonElement),
  hideAccess: element('hide-access', HTMLButtonElement),
  accessText: element('access-text', HTMLTextAreaElement),
};

/** An open vault and the secrets it was opened with, until Lock. */
interface Session {
  contents: KeystoreContents;
  vault: Vault;
  device: string;
  stops: (() => void)[];
  selected: string | undefined;
}

let session: Session | undefined;
/** A keystore that opened, whose device is not a member of its vault yet. */
let pending: { contents: KeystoreContents; release: () => void } | undefined;
let busy = false;
/** How many times Lock was pressed: an unlock that began before a Lock must not end in an open vault. */
let locks = 0;

// ---- messages -------------------------------------------------------------

function say(text: string): void {
  ui.status.textContent = text;
  ui.status.classList.remove('error');
}

function complain(error: unknown): void {
  let text: string;
  if (error instanceof Problem) {
    text = error.message;
  } else if (isE2ekvError(error)) {
    text = `${error.message} (${error.code})`;
    if (error.category === 'integrity') alarm(text);
  } else {
    text = `Unexpected error: ${error instanceof Error ? error.message : String(error)}`;
    // A bug in this page, not a condition of the vault: keep its stack for the console.
    console.error(error);
  }
  ui.status.textContent = text;
  ui.status.classList.add('error');
}

/** Integrity errors stay on screen until dismissed: they mean a replica lied. */
function alarm(text: string): void {
  ui.alarmText.textContent = text;
  ui.alarm.hidden = false;
}

function showProgress(fraction: number): void {
  ui.progress.hidden = false;
  ui.progress.value = fraction;
}

/**
 * Runs one user action at a time, with every control but Lock disabled, so that
 * a second click cannot start a second write or a second vault.
 */
function action(run: () => Promise<void>): () => void {
  return () => {
    if (busy) return;
    busy = true;
    document.body.setAttribute('aria-busy', 'true');
    const controls = [
      ...document.querySelectorAll<HTMLButtonElement | HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement>(
        'button, input, textarea, select',
      ),
    ].filter((control) => control !== ui.lock && !control.disabled);
    for (const control of controls) control.disabled = true;
    run()
      .catch(complain)
      .finally(() => {
        for (const control of controls) control.disabled = false;
        ui.progress.hidden = true;
        busy = false;
        document.body.removeAttribute('aria-busy');
      });
  };
}

// ---- views ----------------------------------------------------------------

type View = 'setup' | 'unlock' | 'pending' | 'vault';

function show(view: View): void {
  ui.setup.hidden = view !== 'setup';
  ui.unlock.hidden = view !== 'unlock';
  ui.pending.hidden = view !== 'pending';
  ui.vault.hidden = view !== 'vault';
  ui.lock.hidden = view !== 'pending' && view !== 'vault';
  if (view === 'unlock') ui.passphrase.focus();
  if (view === 'setup') ui.newPassphrase.focus();
}

function showLocked(): void {
  show(localStorage.getItem(KEYSTORE_KEY) === null ? 'setup' : 'unlock');
}

// ---- secrets ----------------------------------------------------------------

function wipe(contents: KeystoreContents): void {
  // Best effort: the SDK holds keys derived from these, and JavaScript copies
  // strings and buffers where it likes; dropping every reference is what Lock can do.
  contents.identity.signingSeed.fill(0);
  contents.identity.boxSecret.fill(0);
  for (const vault of contents.vaults) vault.secret.fill(0);
}

function seal(contents: KeystoreContents, passphrase: string): Promise<string> {
  return sealKeystore(contents, passphrase, SCRYPT_DEFAULT, { onProgress: showProgress });
}

/** Takes the device lock, or says why not; resolves with the function that releases it. */
function takeDeviceLock(): Promise<() => void> {
  return new Promise((resolve, reject) => {
    navigator.locks
      .request(DEVICE_LOCK, { ifAvailable: true }, (lock) => {
        if (lock === null) {
          reject(
            new Problem(
              'this vault is open in another tab of this browser: lock it there first (a device writes its log from one place at a time)',
            ),
          );
          return undefined;
        }
        return new Promise<void>((release) => resolve(release));
      })
      .catch(reject);
  });
}

// ---- lock and unlock ----------------------------------------------------------

async function create(): Promise<void> {
  if (localStorage.getItem(KEYSTORE_KEY) !== null) {
    throw new Problem('this browser already holds a keystore: reload the page to unlock it');
  }
  const passphrase = ui.newPassphrase.value;
  checkNewPassphrase(passphrase);
  const release = await takeDeviceLock();
  try {
    say('Creating a vault on the replica…');
    const identity = createIdentity();
    const servers = [location.origin];
    const client = await createClient({ identity, servers });
    const { vault, access } = await client.createVault();
    const contents: KeystoreContents = {
      identity,
      vaults: [{ name: VAULT_NAME, vaultId: access.vaultId, secret: access.secret, servers }],
    };
    say('Sealing this device’s keys under the passphrase (about a second)…');
    localStorage.setItem(KEYSTORE_KEY, await seal(contents, passphrase));
    ui.newPassphrase.value = '';
    ui.newPassphrase.type = 'password';
    begin(contents, vault, client.deviceId, release);
    say('Vault created. This device’s keys are sealed in this browser under your passphrase.');
  } catch (error) {
    if (session === undefined) release();
    throw error;
  }
}

async function join(): Promise<void> {
  if (localStorage.getItem(KEYSTORE_KEY) !== null) {
    throw new Problem('this browser already holds a keystore: reload the page to unlock it');
  }
  const access = parseAccess(ui.joinAccess.value);
  const passphrase = ui.newPassphrase.value;
  checkNewPassphrase(passphrase);
  // A new device key: two installations never share one (each writes its own log).
  const contents: KeystoreContents = {
    identity: createIdentity(),
    vaults: [{ name: VAULT_NAME, vaultId: access.vaultId, secret: access.secret, servers: [location.origin] }],
  };
  say('Sealing this device’s keys under the passphrase (about a second)…');
  localStorage.setItem(KEYSTORE_KEY, await seal(contents, passphrase));
  ui.newPassphrase.value = '';
  ui.newPassphrase.type = 'password';
  ui.joinAccess.value = '';
  await open(contents);
}

async function unlock(): Promise<void> {
  const sealed = localStorage.getItem(KEYSTORE_KEY);
  const passphrase = ui.passphrase.value;
  ui.passphrase.value = '';
  if (sealed === null) {
    showLocked();
    throw new Problem('this browser holds no keystore');
  }
  if (passphrase === '') throw new Problem('Enter the passphrase.');
  say('Unlocking (about a second)…');
  let contents: KeystoreContents;
  try {
    contents = await openKeystore(sealed, passphrase, { onProgress: showProgress });
  } catch (error) {
    if (isE2ekvError(error, 'PERMISSION_DENIED')) throw new Problem('Wrong passphrase. Nothing was unlocked.');
    throw error;
  }
  await open(contents);
}

/**
 * Opens the keystore's vault (a sync from the replica), or waits for this device
 * to be added. `held` is the device lock when the caller has it already.
 */
async function open(contents: KeystoreContents, held?: () => void): Promise<void> {
  const stored = contents.vaults[0];
  if (stored === undefined) {
    held?.();
    wipe(contents);
    throw new Problem('this keystore holds no vault');
  }
  let release: () => void;
  try {
    release = held ?? (await takeDeviceLock());
  } catch (error) {
    wipe(contents);
    throw error;
  }
  // Lock is pressed while the replica answers: what it answers is not wanted any more.
  const generation = locks;
  const abandon = () => {
    release();
    wipe(contents);
  };
  try {
    say('Syncing the vault from the replica…');
    const store = await openIndexedDbLocalStore({ name: LOCAL_REPLICA_DB });
    const releaseAll = () => {
      void store.close();
      release();
    };
    let vault: Vault;
    let client: Awaited<ReturnType<typeof createClient>>;
    try {
      client = await createClient({ identity: contents.identity, servers: stored.servers, store });
      vault = await client.openVault({ vaultId: stored.vaultId, secret: stored.secret });
    } catch (error) {
      void store.close();
      throw error;
    }
    if (generation !== locks) {
      void store.close();
      return abandon();
    }
    begin(contents, vault, client.deviceId, releaseAll);
    say('Unlocked.');
  } catch (error) {
    if (generation !== locks) return abandon();
    if (isE2ekvError(error, 'PERMISSION_DENIED')) {
      pending = { contents, release };
      ui.pendingVaultId.textContent = stored.vaultId;
      ui.pendingDevice.value = formatDevice(publicIdentity(contents.identity));
      show('pending');
      say('This device is not a member of the vault yet.');
      return;
    }
    abandon();
    showLocked();
    if (isE2ekvError(error, 'NOT_FOUND')) {
      throw new Problem(
        `the replica holds no vault ${stored.vaultId}: was the server started with another data directory?`,
      );
    }
    throw error;
  }
}

async function retry(): Promise<void> {
  const waiting = pending;
  if (waiting === undefined) {
    showLocked();
    return;
  }
  // open() owns these now (a Lock meanwhile is its to handle), and keeps the
  // device lock: a lock released here would not be free again at once.
  pending = undefined;
  await open(waiting.contents, waiting.release);
}

function begin(contents: KeystoreContents, vault: Vault, device: string, release: () => void): void {
  const s: Session = { contents, vault, device, stops: [], selected: undefined };
  s.stops.push(
    vault.watch(() => scheduleRefresh()),
    vault.onError((error) => {
      if (session !== s) return;
      if (isE2ekvError(error, 'UNAVAILABLE')) {
        ui.status.textContent = 'The replica is unreachable; live updates resume when it answers.';
        ui.status.classList.add('error');
      } else {
        complain(error);
      }
    }),
    release,
  );
  session = s;
  ui.vaultId.textContent = vault.id;
  ui.deviceId.textContent = device;
  ui.ownDevice.value = formatDevice(publicIdentity(contents.identity));
  show('vault');
  scheduleRefresh();
}

function lock(): void {
  locks++;
  const s = session;
  session = undefined;
  if (s !== undefined) {
    for (const stop of s.stops) stop();
    wipe(s.contents);
  }
  if (pending !== undefined) {
    pending.release();
    wipe(pending.contents);
    pending = undefined;
  }
  // Drop every decrypted thing from the DOM, not only from view.
  for (const text of [ui.vaultId, ui.deviceId, ui.keyCount, ui.detailKey, ui.detailKind, ui.detailValue]) {
    text.textContent = '';
  }
  for (const field of [
    ui.setKey,
    ui.setValue,
    ui.addDevice,
    ui.ownDevice,
    ui.accessText,
    ui.prefix,
    ui.pendingDevice,
  ]) {
    field.value = '';
  }
  ui.keys.replaceChildren();
  ui.siblingList.replaceChildren();
  ui.pendingVaultId.textContent = '';
  ui.alarmText.textContent = '';
  ui.alarm.hidden = true;
  ui.detail.hidden = true;
  hideAccess();
  ui.export.open = false;
  showLocked();
  say('Locked.');
}

function forget(): void {
  const sure = confirm(
    'Delete the sealed keystore from this browser? This device’s keys go with it: unless another device of yours is a member of the vault, nobody can open the vault again.',
  );
  if (!sure) return;
  lock();
  localStorage.removeItem(KEYSTORE_KEY);
  // The local replica holds only ciphertext, but without the keystore it is of no use to anyone.
  indexedDB.deleteDatabase(LOCAL_REPLICA_DB);
  showLocked();
  say('The keystore is gone from this browser.');
}

// ---- the vault view -------------------------------------------------------------

let refreshing = false;
let refreshAgain = false;

/** Re-reads the list and the selected key; changes that arrive meanwhile ask for one more pass. */
function scheduleRefresh(): void {
  if (refreshing) {
    refreshAgain = true;
    return;
  }
  refreshing = true;
  void (async () => {
    do {
      refreshAgain = false;
      const s = session;
      if (s === undefined) break;
      await renderKeys(s);
      await renderDetail(s);
    } while (refreshAgain);
  })()
    .catch(complain)
    .finally(() => {
      refreshing = false;
    });
}

async function renderKeys(s: Session): Promise<void> {
  const prefix = ui.prefix.value;
  const names = await s.vault.list(prefix === '' ? {} : { prefix });
  if (session !== s || ui.prefix.value !== prefix) return;
  ui.keys.replaceChildren(
    ...names.map((name) => {
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = name;
      if (name === s.selected) button.setAttribute('aria-current', 'true');
      button.addEventListener('click', () => select(s, name));
      const item = document.createElement('li');
      item.append(button);
      return item;
    }),
  );
  ui.keyCount.textContent = `(${names.length}${prefix === '' ? '' : ' matching'})`;
}

async function renderDetail(s: Session): Promise<void> {
  const name = s.selected;
  if (name === undefined) {
    ui.detail.hidden = true;
    return;
  }
  const siblings = await s.vault.getAll(name);
  if (session !== s || s.selected !== name) return;
  const winner = siblings[0];
  ui.detailKey.textContent = name;
  if (winner === undefined) {
    ui.detailKind.textContent = 'not set';
    ui.detailValue.textContent = '';
  } else {
    const shown = renderValue(winner.value, winner.kind);
    ui.detailKind.textContent = shown.label;
    ui.detailValue.textContent = shown.text;
  }
  ui.delete.hidden = !siblings.some((sibling) => !sibling.deleted);
  ui.siblings.hidden = siblings.length < 2;
  ui.siblingsTitle.textContent = `${siblings.length} concurrent values`;
  ui.siblingList.replaceChildren(
    ...siblings.map((sibling) => {
      const shown = renderValue(sibling.value, sibling.kind);
      const about = document.createElement('p');
      about.textContent = `${shown.label}, from device ${sibling.device.slice(0, 16)}…${sibling.device === s.device ? ' (this device)' : ''}`;
      const value = document.createElement('pre');
      value.textContent = shown.text;
      const item = document.createElement('li');
      item.append(about, value);
      return item;
    }),
  );
  ui.detail.hidden = false;
}

function select(s: Session, name: string): void {
  s.selected = name;
  ui.setKey.value = name;
  scheduleRefresh();
}

function current(): Session {
  if (session === undefined) throw new Problem('the vault is locked');
  return session;
}

async function setKey(): Promise<void> {
  const s = current();
  const name = ui.setKey.value;
  if (name === '') throw new Problem('Enter a key.');
  const value = parseInput(ui.setType.value as InputType, ui.setValue.value);
  await s.vault.set(name, value);
  if (session !== s) return;
  ui.setValue.value = '';
  s.selected = name;
  say(`Saved “${name}”.`);
  scheduleRefresh();
}

async function deleteKey(): Promise<void> {
  const s = current();
  const name = s.selected;
  if (name === undefined) return;
  await s.vault.delete(name);
  if (session !== s) return;
  s.selected = undefined;
  say(`Deleted “${name}”.`);
  scheduleRefresh();
}

async function sync(): Promise<void> {
  const s = current();
  await s.vault.sync();
  if (session !== s) return;
  say('Synced with the replica.');
  scheduleRefresh();
}

async function addDevice(): Promise<void> {
  const s = current();
  const keys = parseDevice(ui.addDevice.value);
  const role = ui.addRole.value;
  if (role !== 'reader' && role !== 'writer' && role !== 'admin') throw new Problem('choose a role');
  const id = toHex(keys.signingKey);
  if (id === s.device) throw new Problem('that is this device');
  await s.vault.addMember(keys, role satisfies Role);
  if (session !== s) return;
  ui.addDevice.value = '';
  say(`Added device ${id.slice(0, 16)}… as ${role}: it can open the vault now.`);
}

function showAccess(): void {
  const s = current();
  const stored = s.contents.vaults[0]!;
  ui.accessText.value = formatAccess({ vaultId: stored.vaultId, secret: stored.secret });
  ui.accessText.hidden = false;
  ui.showAccess.hidden = true;
  ui.hideAccess.hidden = false;
}

function hideAccess(): void {
  ui.accessText.value = '';
  ui.accessText.hidden = true;
  ui.showAccess.hidden = false;
  ui.hideAccess.hidden = true;
}

// ---- wiring ---------------------------------------------------------------------

// No form may submit: with form-action 'none' the browser would refuse anyway,
// and a submitted form would carry its fields (a passphrase) in a URL.
for (const form of [ui.setupForm, ui.unlockForm, ui.setForm, ui.addForm]) {
  form.addEventListener('submit', (event) => event.preventDefault());
}
ui.unlockForm.addEventListener('submit', action(unlock));
ui.setForm.addEventListener('submit', action(setKey));
ui.addForm.addEventListener('submit', action(addDevice));
ui.create.addEventListener('click', action(create));
ui.join.addEventListener('click', action(join));
ui.retry.addEventListener('click', action(retry));
ui.delete.addEventListener('click', action(deleteKey));
ui.sync.addEventListener('click', action(sync));
ui.generate.addEventListener('click', () => {
  ui.newPassphrase.value = generatePassphrase();
  // Shown so that it can be written down; it is never stored anywhere in clear.
  ui.newPassphrase.type = 'text';
  say('Write this passphrase down somewhere safe: nobody can recover it.');
});
ui.forget.addEventListener('click', forget);
ui.lock.addEventListener('click', lock);
ui.prefix.addEventListener('input', () => scheduleRefresh());
ui.showAccess.addEventListener('click', () => {
  try {
    showAccess();
  } catch (error) {
    complain(error);
  }
});
ui.hideAccess.addEventListener('click', hideAccess);
ui.export.addEventListener('toggle', () => {
  if (!ui.export.open) hideAccess();
});
ui.alarmDismiss.addEventListener('click', () => {
  ui.alarm.hidden = true;
});

showLocked();
