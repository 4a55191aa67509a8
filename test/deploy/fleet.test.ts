/**
 * deploy/cloudformation/mirrorguard-fleet.yaml: against the CloudFormation resource specification (the
 * same checker as the single-collector template), and against what the fleet needs: the NLB as mirror
 * target with an HTTPS health check on the API the config serves, collectors in an Auto Scaling group
 * with a termination hook their drain script completes, an evidence bucket that is versioned, encrypted,
 * TLS only and optionally locked, a role that can put, read and lock but never delete, and a first boot
 * that writes an archive config our own schema accepts.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { configSchema } from '../../src/config/schema.js';
import { parseHostPort } from '../../src/util/units.js';
import { PROJECT_ROOT } from '../helpers/fixtures.js';
import { itNeeds } from '../helpers/needs.js';
import { parseTemplate, validateTemplate, type CfnSpec } from './cfn-lint.js';

const TEMPLATE = join(PROJECT_ROOT, 'deploy', 'cloudformation', 'mirrorguard-fleet.yaml');
const EXAMPLE_CONFIG = join(PROJECT_ROOT, 'deploy', 'examples', 'config.yaml');
type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const spec = createRequire(import.meta.url)('@aws-cdk/cfnspec').specification() as CfnSpec;
let t: Obj;
beforeAll(() => {
  t = parseTemplate(readFileSync(TEMPLATE, 'utf8'));
});
const res = (name: string): Obj => t.Resources[name];
const apiPort = () => parseHostPort((parseYaml(readFileSync(EXAMPLE_CONFIG, 'utf8')) as Obj).api.listen)!.port;

/** Resolve every Fn::If on the given conditions; drop AWS::NoValue. */
function resolve(v: unknown, holds: Record<string, boolean>): unknown {
  const NO = Symbol('no');
  const walk = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(walk).filter((y) => y !== NO);
    if (x && typeof x === 'object') {
      const o = x as Obj;
      if (Array.isArray(o['Fn::If']) && o['Fn::If'][0] in holds) return walk(o['Fn::If'][holds[o['Fn::If'][0]] ? 1 : 2]);
      if (o.Ref === 'AWS::NoValue') return NO;
      const out: Obj = {};
      for (const [k, y] of Object.entries(o)) {
        const r = walk(y);
        if (r !== NO) out[k] = r;
      }
      return out;
    }
    return x;
  };
  return walk(v);
}

/** The first-boot script as an instance gets it, with made-up values for the substitutions. */
function userData(holds: { HasObjectLock: boolean; HasKms: boolean }): string {
  const [text, vars] = res('LaunchTemplate').Properties.LaunchTemplateData.UserData['Fn::Base64']['Fn::Sub'] as [string, Obj];
  const v = resolve(vars, holds) as Obj;
  const values: Record<string, string> = {
    ObjectLockValue: typeof v.ObjectLockValue === 'string' ? v.ObjectLockValue : v.ObjectLockValue['Fn::Sub'].replace('${ObjectLockMode}', 'COMPLIANCE').replace('${ObjectLockDays}', '400'),
    KmsValue: typeof v.KmsValue === 'string' ? v.KmsValue : 'arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab',
    EvidenceBucket: 'mg-fleet-evidencebucket-1a2b3c4d5e6f',
    EvidencePrefix: 'mirrorguard/prod',
    KeepLocalHours: '12',
    'AWS::Region': 'eu-central-1',
    'AWS::StackName': 'mg-fleet',
  };
  return text.replace(/\$\{([^}!]+)\}/g, (_m: string, name: string) => values[name] ?? `value-of-${name}`);
}

describe('the fleet template against the CloudFormation resource specification', () => {
  it('uses only known types, properties and attributes, with every required property, reference and condition in place', () => {
    expect(validateTemplate(t, spec)).toEqual([]);
  });
});

describe('the mirror target and the collectors', () => {
  it('an internal NLB with a UDP 4789 listener is the mirror target; its target group checks /healthz over HTTPS on the API port', () => {
    expect(res('TrafficMirrorTarget').Properties.NetworkLoadBalancerArn).toEqual({ Ref: 'LoadBalancer' });
    expect(res('LoadBalancer').Properties).toMatchObject({ Type: 'network', Scheme: 'internal' });
    expect(res('Listener').Properties).toMatchObject({ Protocol: 'UDP', Port: 4789 });
    expect(res('TargetGroup').Properties).toMatchObject({ Protocol: 'UDP', Port: 4789, HealthCheckProtocol: 'HTTPS', HealthCheckPath: '/healthz', HealthCheckPort: String(apiPort()) });
  });

  it('an Auto Scaling group registers its collectors in that target group, IMDSv2 only, health from the NLB', () => {
    const asg = res('AutoScalingGroup').Properties;
    expect(asg.TargetGroupARNs).toEqual([{ Ref: 'TargetGroup' }]);
    expect(asg.HealthCheckType).toBe('ELB');
    expect(asg.VPCZoneIdentifier).toEqual({ Ref: 'SubnetIds' });
    expect(res('LaunchTemplate').Properties.LaunchTemplateData.MetadataOptions).toMatchObject({ HttpTokens: 'required', HttpPutResponseHopLimit: 1 });
    expect(res('AutoScalingGroup').CreationPolicy.ResourceSignal.Count).toEqual({ Ref: 'DesiredCapacity' });
    expect(userData({ HasObjectLock: true, HasKms: false })).toContain('--resource AutoScalingGroup');
  });

  it('a terminating collector waits in a lifecycle hook that its drain script completes after stopping (flush, upload) the service', () => {
    const hook = res('AutoScalingGroup').Properties.LifecycleHookSpecificationList[0];
    expect(hook).toMatchObject({ LifecycleTransition: 'autoscaling:EC2_INSTANCE_TERMINATING', DefaultResult: 'CONTINUE' });
    expect(hook.HeartbeatTimeout).toBeGreaterThan(600); // longer than the unit's stop timeout
    const s = userData({ HasObjectLock: true, HasKms: false });
    expect(s).toContain(`--lifecycle-hook-name ${hook.LifecycleHookName}`);
    expect(s).toContain('TimeoutStopSec=600');
    expect(s).toMatch(/systemctl stop mirrorguard\.service\n\s*aws autoscaling complete-lifecycle-action/);
    expect(s).toContain('GROUP=mg-fleet-collectors');
    expect(res('AutoScalingGroup').Properties.AutoScalingGroupName).toEqual({ 'Fn::Sub': '${AWS::StackName}-collectors' });
  });

  itNeeds(['bash'], 'the first-boot script and the drain script are valid bash', () => {
    const s = userData({ HasObjectLock: true, HasKms: true });
    expect(spawnSync('bash', ['-n'], { input: s, encoding: 'utf8' })).toMatchObject({ status: 0, stderr: '' });
    const drain = /cat >\/usr\/local\/sbin\/mirrorguard-drain <<'EOF'\n([\s\S]*?)\nEOF\n/.exec(s)![1]!;
    expect(drain.startsWith('#!/bin/bash\n')).toBe(true);
    expect(spawnSync('bash', ['-n'], { input: drain, encoding: 'utf8' })).toMatchObject({ status: 0, stderr: '' });
  });
});

describe('the first boot writes a fleet config our schema accepts', () => {
  /** The boot's shell variables as the store part of the script sets them (storeUrl, storeCa). */
  const BOOT_VARS = { storeUrl: 'postgres://mirrorguard@mg-catalog.abcdefghij.eu-central-1.rds.amazonaws.com:5432/mirrorguard?sslmode=verify-full', storeCa: '/etc/mirrorguard/rds-ca.pem' };
  const fleetConfig = (holds: { HasObjectLock: boolean; HasKms: boolean }, vars: Record<string, string> = BOOT_VARS) => {
    const s = userData(holds);
    const block = /cat >>\/etc\/mirrorguard\/config\.yaml <<EOF\n([\s\S]*?)\nEOF\n/.exec(s)![1]!.replace(/\$([A-Za-z_]\w*)/g, (m, name: string) => vars[name] ?? m);
    return configSchema.parse(parseYaml(`${readFileSync(EXAMPLE_CONFIG, 'utf8')}\n${block}\n`));
  };

  it('serve finds the shared catalog where it reads it: store.url (no password), store.passwordFile, the RDS CA as store.tls.ca', () => {
    const c = fleetConfig({ HasObjectLock: false, HasKms: false });
    expect(c.store).toEqual({ url: BOOT_VARS.storeUrl, passwordFile: '/etc/mirrorguard/store.password', tls: { ca: '/etc/mirrorguard/rds-ca.pem' } });
    // Not RDS: no CA file, TLS as the URL's sslmode says with the system's CAs.
    expect(fleetConfig({ HasObjectLock: false, HasKms: false }, { ...BOOT_VARS, storeCa: 'null' }).store.tls).toEqual({ ca: null });
    const s = userData({ HasObjectLock: false, HasKms: false });
    // The CA is fetched only for an RDS host; serve reads no environment variable for the store.
    expect(s).toMatch(/case "\$storeUrl" in\n\s*\*\.rds\.amazonaws\.com\[:\/\]\*\)\n\s*curl -sSf --retry 5 -o \/etc\/mirrorguard\/rds-ca\.pem https:\/\/truststore\.pki\.rds\.amazonaws\.com\/global\/global-bundle\.pem/);
    expect(s).not.toMatch(/MIRRORGUARD_DATABASE_URL/);
    expect(s).toContain('chown mirrorguard:mirrorguard /etc/mirrorguard/store.password');
  });

  itNeeds(['bash'], 'the RDS case matches an RDS URL and nothing else', () => {
    const s = userData({ HasObjectLock: false, HasKms: false });
    const pattern = /case "\$storeUrl" in\n\s*(\S+)\)/.exec(s)![1]!;
    const probe = (url: string) => spawnSync('bash', ['-c', `case "$1" in ${pattern}) echo rds;; *) echo other;; esac`, '_', url], { encoding: 'utf8' }).stdout.trim();
    expect(probe(BOOT_VARS.storeUrl)).toBe('rds');
    expect(probe('postgres://mg@db.cluster-abc.eu-west-1.rds.amazonaws.com/mg')).toBe('rds');
    expect(probe('postgres://mg@db.internal:5432/mg?sslmode=require')).toBe('other');
    expect(probe('postgres://mg@rds.amazonaws.com.evil.example/mg')).toBe('other');
  });

  it('store-url.mjs splits the secret: the URL without its password out, the password (decoded) into a 0600 file; refusals never echo the secret', () => {
    const script = join(PROJECT_ROOT, 'deploy', 'cloudformation', 'store-url.mjs');
    const dir = mkdtempSync(join(tmpdir(), 'mg-store-url-'));
    try {
      const pw = join(dir, 'store.password');
      const ok = spawnSync(process.execPath, [script, pw], { input: 'postgres://mirrorguard:p%40ss%3Aw0rd%2F@db.example:5432/mg?sslmode=verify-full\n', encoding: 'utf8' });
      expect(ok).toMatchObject({ status: 0, stdout: 'postgres://mirrorguard@db.example:5432/mg?sslmode=verify-full\n' });
      expect(readFileSync(pw, 'utf8')).toBe('p@ss:w0rd/');
      expect(statSync(pw).mode & 0o777).toBe(0o600);
      for (const bad of ['postgres://mirrorguard@db.example/mg', 'mysql://u:secret-1@db/x', 'not a url secret-1']) {
        const r = spawnSync(process.execPath, [script, join(dir, 'x')], { input: bad, encoding: 'utf8' });
        expect(r.status, bad).toBe(1);
        expect(r.stdout + r.stderr).not.toContain('secret-1');
        expect(r.stdout).toBe('');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('with Object Lock and SSE-KMS', () => {
    const c = fleetConfig({ HasObjectLock: true, HasKms: true });
    expect(c.archive).toEqual({
      s3: { bucket: 'mg-fleet-evidencebucket-1a2b3c4d5e6f', prefix: 'mirrorguard/prod', region: 'eu-central-1', endpoint: null, forcePathStyle: false },
      rotateSeconds: 60,
      keepLocalHours: 12,
      objectLock: { mode: 'COMPLIANCE', days: 400 },
      kmsKeyId: 'arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab',
      signingKey: '/etc/mirrorguard/ledger.key',
    });
  });

  it('without them', () => {
    const c = fleetConfig({ HasObjectLock: false, HasKms: false });
    expect(c.archive).toMatchObject({ objectLock: null, kmsKeyId: null });
  });

  it('the secrets (database URL, ledger key) come from Secrets Manager at boot, never from the template text', () => {
    const s = userData({ HasObjectLock: true, HasKms: false });
    expect(s).toMatch(/storeUrl=\$\(umask 077; secret '[^']+' \| \/usr\/bin\/node-20 \/opt\/mirrorguard\/deploy\/cloudformation\/store-url\.mjs \/etc\/mirrorguard\/store\.password\)/);
    expect(s).toMatch(/secret '[^']+' >\/etc\/mirrorguard\/ledger\.key\)/);
    expect(s).toContain('(umask 077; secret');
    expect(t.Parameters.DatabaseUrl.NoEcho).toBe(true);
    // The boot splits USER:PASSWORD out of it: a URL without a password is refused at stack creation.
    const pattern = new RegExp(t.Parameters.DatabaseUrl.AllowedPattern);
    expect(pattern.test('postgres://mirrorguard:CHANGE-ME@mg-catalog.abcdefghij.eu-central-1.rds.amazonaws.com:5432/mirrorguard?sslmode=verify-full')).toBe(true);
    expect(pattern.test('postgres://mirrorguard@mg-catalog.example:5432/mirrorguard')).toBe(false);
    expect(res('DatabaseUrlSecret').Properties.SecretString).toEqual({ Ref: 'DatabaseUrl' });
  });
});

describe('the evidence bucket', () => {
  it('is versioned, kept when the stack goes, private, encrypted (SSE-S3 or SSE-KMS), with expiry and multipart clean-up', () => {
    const b = res('EvidenceBucket');
    expect([b.DeletionPolicy, b.UpdateReplacePolicy]).toEqual(['Retain', 'Retain']);
    expect(b.Properties.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(Object.values(b.Properties.PublicAccessBlockConfiguration)).toEqual([true, true, true, true]);
    const sse = (kms: boolean) => (resolve(b.Properties.BucketEncryption, { HasKms: kms }) as Obj).ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault;
    expect(sse(false)).toEqual({ SSEAlgorithm: 'AES256' });
    expect(sse(true)).toEqual({ SSEAlgorithm: 'aws:kms', KMSMasterKeyID: { Ref: 'KmsKeyArn' } });
    const rules = b.Properties.LifecycleConfiguration.Rules;
    expect(rules[0]).toMatchObject({ Status: 'Enabled', ExpirationInDays: { Ref: 'ExpireAfterDays' } });
    expect(rules[1]).toMatchObject({ AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } });
  });

  it('has Object Lock (with a default retention) exactly when a mode is chosen', () => {
    const b = res('EvidenceBucket').Properties;
    expect(resolve(b, { HasObjectLock: false, HasKms: false })).not.toHaveProperty('ObjectLockEnabled');
    expect(resolve(b, { HasObjectLock: true, HasKms: false })).toMatchObject({
      ObjectLockEnabled: true,
      ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: { Ref: 'ObjectLockMode' }, Days: { Ref: 'ObjectLockDays' } } } },
    });
    expect(t.Parameters.ObjectLockMode.AllowedValues).toEqual(['NONE', 'GOVERNANCE', 'COMPLIANCE']);
  });

  it('refuses plain HTTP and TLS below 1.2, and denies the collectors every delete', () => {
    const st = res('EvidenceBucketPolicy').Properties.PolicyDocument.Statement as Obj[];
    expect(st.find((s) => s.Sid === 'TlsOnly')).toMatchObject({ Effect: 'Deny', Principal: '*', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } });
    expect(st.find((s) => s.Sid === 'TlsOneTwoOrLater')).toMatchObject({ Effect: 'Deny', Condition: { NumericLessThan: { 's3:TlsVersion': '1.2' } } });
    expect(st.find((s) => s.Sid === 'CollectorsNeverDelete')).toMatchObject({ Effect: 'Deny', Principal: { AWS: { 'Fn::GetAtt': ['InstanceRole', 'Arn'] } } });
  });
});

describe('the collectors’ role', () => {
  const statements = (kms = true): Obj[] => (resolve(res('InstanceRole').Properties.Policies, { HasKms: kms }) as Obj[]).flatMap((p) => p.PolicyDocument.Statement);
  const allowed = (kms = true) => statements(kms).filter((s) => s.Effect === 'Allow').flatMap((s) => [s.Action].flat() as string[]);

  it('may put (with checksum, retention, legal hold), read and list the evidence prefix, and never delete', () => {
    const s3 = allowed().filter((a) => a.startsWith('s3:'));
    expect(s3.filter((a) => /Delete|Bypass|PutBucket|PutLifecycle/.test(a))).toEqual([]);
    expect(s3).toEqual(expect.arrayContaining(['s3:PutObject', 's3:PutObjectRetention', 's3:PutObjectLegalHold', 's3:GetObject', 's3:GetObjectVersion', 's3:ListBucket']));
    const write = statements().find((s) => s.Sid === 'ArchiveWrite')!;
    expect(write.Resource).toEqual({ 'Fn::Sub': '${EvidenceBucket.Arn}/${EvidencePrefix}/*' });
    const deny = statements().find((s) => s.Sid === 'NeverDelete')!;
    expect(deny.Effect).toBe('Deny');
    expect(deny.Action).toEqual(expect.arrayContaining(['s3:DeleteObject', 's3:DeleteObjectVersion', 's3:BypassGovernanceRetention']));
    expect(statements().find((s) => s.Sid === 'ArchiveList')!.Condition).toEqual({ StringLike: { 's3:prefix': [{ 'Fn::Sub': '${EvidencePrefix}/*' }] } });
  });

  it('uses the KMS key only with SSE-KMS; completes only its own group’s lifecycle hook; reads only its secrets', () => {
    expect(allowed(true)).toContain('kms:GenerateDataKey');
    expect(allowed(false).filter((a) => a.startsWith('kms:'))).toEqual([]);
    expect(statements().find((s) => s.Sid === 'OwnLifecycleHook')!.Resource['Fn::Sub']).toMatch(/autoScalingGroupName\/\$\{AWS::StackName\}-collectors$/);
    expect(statements().find((s) => s.Sid === 'OwnSecrets')!.Resource).toEqual([
      { Ref: 'AdminTokenSecret' },
      { Ref: 'IngestTokenSecret' },
      { Ref: 'WebhookSigningSecret' },
      { Ref: 'DatabaseUrlSecret' },
      { Ref: 'SigningKeySecretArn' },
    ]);
    for (const a of allowed().filter((x) => x.startsWith('ec2:'))) expect(a).toMatch(/^ec2:DescribeTrafficMirror/);
  });

  it('the security group admits VXLAN and health checks from the VPC, the API from its CIDR; out: HTTPS and PostgreSQL in the VPC', () => {
    const sg = res('SecurityGroup').Properties;
    expect(sg.SecurityGroupIngress.map((r: Obj) => [r.IpProtocol, r.FromPort, r.CidrIp])).toEqual([
      ['udp', 4789, { Ref: 'VpcCidr' }],
      ['tcp', apiPort(), { Ref: 'ApiAllowedCidr' }],
      ['tcp', apiPort(), { Ref: 'VpcCidr' }],
    ]);
    expect(sg.SecurityGroupEgress.map((r: Obj) => [r.IpProtocol, r.FromPort, r.CidrIp])).toEqual([
      ['tcp', 443, '0.0.0.0/0'],
      ['tcp', 5432, { Ref: 'VpcCidr' }],
    ]);
  });
});
