/**
 * The deployment's Ed25519 signing key (`archive.signingKey`): made by `mirrorguard keys init`, read by
 * serve (to sign) and by `mirrorguard verify` (the public half). PEM, PKCS#8 for the private key and SPKI
 * for the public key, as node:crypto and openssl read them. The key ID is the first 16 hex digits of the
 * SHA-256 of the public key's SPKI DER: records name the key that signed them without carrying it.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { MgError } from '../errors.js';

export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  keyId: string;
}

export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
}

export function generateSigningKey(): { privatePem: string; publicPem: string; keyId: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }) as string,
    keyId: keyIdOf(publicKey),
  };
}

function readPem(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new MgError('MG_ERR_KEY_READ', `${path}: ${(e as Error).message}`, { cause: e });
  }
}

/** The private key (and its public half) from a PEM file; MG_ERR_KEY_READ when unreadable or not Ed25519. */
export function loadSigningKey(path: string): SigningKey {
  const pem = readPem(path);
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (e) {
    throw new MgError('MG_ERR_KEY_READ', `${path}: not a PEM private key (${(e as Error).message})`, { cause: e });
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new MgError('MG_ERR_KEY_READ', `${path}: a ${privateKey.asymmetricKeyType} key; the ledger signs with Ed25519 ('mirrorguard keys init')`);
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, keyId: keyIdOf(publicKey) };
}

/** A public key from a PEM file (a private key file is accepted too: its public half is used). */
export function loadPublicKey(path: string): { publicKey: KeyObject; keyId: string } {
  const pem = readPem(path);
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey(pem);
  } catch (e) {
    throw new MgError('MG_ERR_KEY_READ', `${path}: not a PEM public key (${(e as Error).message})`, { cause: e });
  }
  if (publicKey.asymmetricKeyType !== 'ed25519') throw new MgError('MG_ERR_KEY_READ', `${path}: a ${publicKey.asymmetricKeyType} key; the ledger is signed with Ed25519`);
  return { publicKey, keyId: keyIdOf(publicKey) };
}

/**
 * Write a new key pair: the private key created with mode 0600 (never over an existing file unless
 * `force`, and then through a 0600 temporary file renamed over it), the public key 0644.
 */
export function writeKeyPair(privatePath: string, publicPath: string, force: boolean): { keyId: string } {
  const k = generateSigningKey();
  const write = (path: string, text: string, mode: number) => {
    try {
      if (!force) {
        writeFileSync(path, text, { flag: 'wx', mode });
        return;
      }
      const tmp = `${path}.tmp-${process.pid}`;
      try {
        writeFileSync(tmp, text, { flag: 'wx', mode });
        renameSync(tmp, path);
      } finally {
        rmSync(tmp, { force: true });
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new MgError('MG_ERR_KEY_EXISTS', `${path}; pass --force to replace it`, { cause: e });
      throw new MgError('MG_ERR_KEY_WRITE', `${path}: ${(e as Error).message}`, { cause: e });
    }
  };
  // Refuse before writing either file, so a refusal leaves nothing half made.
  if (!force) {
    for (const p of [privatePath, publicPath]) if (existsSync(p)) throw new MgError('MG_ERR_KEY_EXISTS', `${p}; pass --force to replace it`);
  }
  write(privatePath, k.privatePem, 0o600);
  write(publicPath, k.publicPem, 0o644);
  return { keyId: k.keyId };
}
