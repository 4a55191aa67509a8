/**
 * deploy/cloudformation/mirrorguard-target.yaml against the CloudFormation resource specification
 * (@aws-cdk/cfnspec), and against what mirrorguard itself expects: the CloudTrail calls the detector
 * reads, the API port and token names of the config the instance runs, read-only inventory rights.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { MUTATING_CALLS } from '../../src/detect/cloudtrail/normalize.js';
import { parseHostPort } from '../../src/util/units.js';
import { PROJECT_ROOT } from '../helpers/fixtures.js';
import { itNeeds } from '../helpers/needs.js';
import { parseTemplate, subVariables, validateTemplate, type CfnSpec } from './cfn-lint.js';

const TEMPLATE = join(PROJECT_ROOT, 'deploy', 'cloudformation', 'mirrorguard-target.yaml');
const EXAMPLE_CONFIG = join(PROJECT_ROOT, 'deploy', 'examples', 'config.yaml');

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const spec = createRequire(import.meta.url)('@aws-cdk/cfnspec').specification() as CfnSpec;
let template: Obj;
beforeAll(() => {
  template = parseTemplate(readFileSync(TEMPLATE, 'utf8'));
});
const fresh = (): Obj => structuredClone(template);
const res = (name: string): Obj => template.Resources[name];

/** Pick the branch of every Fn::If on `cond` (other Fn::Ifs are left alone); drop AWS::NoValue. */
function resolveIf(v: unknown, cond: string, holds: boolean): unknown {
  if (Array.isArray(v)) return v.map((x) => resolveIf(x, cond, holds)).filter((x) => x !== NO_VALUE);
  if (v && typeof v === 'object') {
    const o = v as Obj;
    if (Array.isArray(o['Fn::If']) && o['Fn::If'][0] === cond) return resolveIf(o['Fn::If'][holds ? 1 : 2], cond, holds);
    if (o.Ref === 'AWS::NoValue') return NO_VALUE;
    const out: Obj = {};
    for (const [k, x] of Object.entries(o)) {
      const r = resolveIf(x, cond, holds);
      if (r !== NO_VALUE) out[k] = r;
    }
    return out;
  }
  return v;
}
const NO_VALUE = Symbol('AWS::NoValue');

/** The template as one TargetMode sees it: every Fn::If on the mode's conditions resolved. */
function inMode(v: unknown, mode: 'instance' | 'nlb' | 'gwlb'): unknown {
  const holds: Record<string, boolean> = { UseNlb: mode === 'nlb', UseGwlb: mode === 'gwlb', UseLoadBalancer: mode !== 'instance' };
  const walk = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(walk).filter((y) => y !== NO_VALUE);
    if (x && typeof x === 'object') {
      const o = x as Obj;
      if (Array.isArray(o['Fn::If']) && o['Fn::If'][0] in holds) return walk(o['Fn::If'][holds[o['Fn::If'][0]] ? 1 : 2]);
      if (o.Ref === 'AWS::NoValue') return NO_VALUE;
      const out: Obj = {};
      for (const [k, y] of Object.entries(o)) {
        const r = walk(y);
        if (r !== NO_VALUE) out[k] = r;
      }
      return out;
    }
    return x;
  };
  return walk(v);
}

describe('the template against the CloudFormation resource specification', () => {
  it('uses only resource types, properties and attributes the spec knows, with every required property, reference and condition in place', () => {
    expect(validateTemplate(template, spec)).toEqual([]);
  });

  it('has the traffic-mirroring, EventBridge and load-balancer resources the issue asks for', () => {
    const types = Object.values(template.Resources as Obj).map((r) => r.Type);
    for (const t of [
      'AWS::EC2::TrafficMirrorTarget',
      'AWS::EC2::SecurityGroup',
      'AWS::EC2::Instance',
      'AWS::IAM::Role',
      'AWS::Events::Rule',
      'AWS::Events::Connection',
      'AWS::Events::ApiDestination',
      'AWS::ElasticLoadBalancingV2::LoadBalancer',
      'AWS::ElasticLoadBalancingV2::TargetGroup',
      'AWS::ElasticLoadBalancingV2::Listener',
    ]) {
      expect(types, t).toContain(t);
      expect(spec.ResourceTypes[t], `${t} in the spec`).toBeDefined();
    }
    expect(Object.keys(template.Parameters)).toEqual(expect.arrayContaining(['VpcId', 'VpcCidr', 'SubnetId', 'ApiAllowedCidr', 'InstanceType']));
    expect(template.Outputs.TrafficMirrorTargetId.Value).toEqual({ Ref: 'TrafficMirrorTarget' });
    expect(template.Outputs.ApiUrl.Value['Fn::Sub']).toMatch(/^https:\/\/\$\{CollectorEni\.PrimaryPrivateIpAddress\}:8443$/);
  });
});

describe('the checker finds what would fail a stack', () => {
  // Each case breaks a copy of the real template in one way; the checker must name that place.
  const cases: [string, (t: Obj) => void, RegExp][] = [
    ['an unknown resource type', (t) => (t.Resources.TrafficMirrorTarget.Type = 'AWS::EC2::TrafficMirrorTargett'), /Resources\.TrafficMirrorTarget\.Type: .*not in the CloudFormation resource specification/],
    ['an unknown property', (t) => (t.Resources.SecurityGroup.Properties.VpcID = { Ref: 'VpcId' }), /Resources\.SecurityGroup\.Properties\.VpcID: unknown property/],
    ['an unknown property of a property type', (t) => (t.Resources.SecurityGroup.Properties.SecurityGroupIngress[0].Port = 4789), /SecurityGroupIngress\[0\]\.Port: unknown property/],
    ['a missing required property', (t) => delete t.Resources.SecurityGroup.Properties.GroupDescription, /Resources\.SecurityGroup\.Properties\.GroupDescription: required property is missing/],
    ['a missing required property of a property type', (t) => delete t.Resources.CloudTrailConnection.Properties.AuthParameters.ApiKeyAuthParameters.ApiKeyName, /ApiKeyAuthParameters\.ApiKeyName: required property is missing/],
    ['a Ref to nothing', (t) => (t.Resources.CollectorEni.Properties.SubnetId = { Ref: 'SubnetID' }), /CollectorEni\.Properties\.SubnetId\.Ref: refers to "SubnetID"/],
    ['a GetAtt of an attribute the type does not have', (t) => (t.Outputs.SecurityGroupId.Value = { 'Fn::GetAtt': ['SecurityGroup', 'Id'] }), /Outputs\.SecurityGroupId.*has no attribute "Id"/],
    ['a Sub variable that names nothing', (t) => (t.Resources.AdminTokenSecret.Properties.Description = { 'Fn::Sub': 'x ${AWS::StackNam}' }), /AdminTokenSecret.*\$\{AWS::StackNam\}.*refers to "AWS::StackNam"/],
    ['a Sub attribute that does not exist', (t) => (t.Outputs.ApiUrl.Value = { 'Fn::Sub': 'https://${CollectorEni.PrivateIp}:8443' }), /Outputs\.ApiUrl.*has no attribute "PrivateIp"/],
    ['an undefined condition', (t) => (t.Resources.LoadBalancer.Condition = 'UseNLB'), /Resources\.LoadBalancer\.Condition: condition "UseNLB" is not defined/],
    ['an undefined condition in Fn::If', (t) => (t.Resources.TrafficMirrorTarget.Properties.NetworkLoadBalancerArn['Fn::If'][0] = 'Nlb'), /condition "Nlb" is not defined/],
    ['a reference to a conditional resource outside its condition', (t) => (t.Resources.TrafficMirrorTarget.Properties.NetworkLoadBalancerArn = { Ref: 'LoadBalancer' }), /TrafficMirrorTarget.*refers to LoadBalancer, which exists only when UseNlb holds/],
    ['a conditional resource used in the false branch of its condition', (t) => (t.Resources.TrafficMirrorTarget.Properties.NetworkLoadBalancerArn['Fn::If'] = ['UseNlb', { Ref: 'AWS::NoValue' }, { Ref: 'LoadBalancer' }]), /refers to LoadBalancer, which exists only when UseNlb holds/],
    ['a list where a string goes', (t) => (t.Resources.CollectorEni.Properties.SubnetId = ['subnet-1']), /CollectorEni\.Properties\.SubnetId: must be String/],
    ['a string where a list goes', (t) => (t.Resources.CollectorEni.Properties.GroupSet = 'sg-1'), /CollectorEni\.Properties\.GroupSet: must be a list/],
    ['a non-integer where an integer goes', (t) => (t.Resources.SecurityGroup.Properties.SecurityGroupIngress[0].FromPort = 'vxlan'), /FromPort: must be Integer/],
    ['an unused parameter', (t) => (t.Parameters.Unused = { Type: 'String', Default: '' }), /Parameters\.Unused: is never used/],
    ['a default outside its own AllowedValues', (t) => (t.Parameters.TargetMode.Default = 'alb'), /Parameters\.TargetMode\.Default: "alb" is not in AllowedValues/],
    ['a default that fails its own AllowedPattern', (t) => (t.Parameters.CloudTrailIngestUrl.Default = 'http://x/v1/cloudtrail'), /Parameters\.CloudTrailIngestUrl\.Default: .* does not match AllowedPattern/],
    ['a DependsOn that names nothing', (t) => (t.Resources.Instance.DependsOn = 'Role'), /Resources\.Instance\.DependsOn: "Role" is not a resource/],
    ['a resource referenced inside Conditions', (t) => (t.Conditions.UseNlb = { 'Fn::Equals': [{ Ref: 'Instance' }, 'x'] }), /Conditions may refer to parameters only/],
  ];
  it.each(cases)('%s', (_name, mutate, expected) => {
    const t = fresh();
    mutate(t);
    const problems = validateTemplate(t, spec);
    expect(problems.some((p) => expected.test(p)), `expected ${expected} in:\n${problems.join('\n')}`).toBe(true);
  });

  it('reads Sub variables as CloudFormation does: ${!Literal} is text, not a variable', () => {
    expect(subVariables('a ${X} b ${Y.Arn} c ${!NotAVar} ${ AWS::Region }')).toEqual(['X', 'Y.Arn', 'AWS::Region']);
  });
});

describe('the mirror target', () => {
  it("is the collector's own interface in instance mode, the NLB in nlb mode and the GWLB endpoint in gwlb mode", () => {
    const t = res('TrafficMirrorTarget').Properties;
    const props = (mode: 'instance' | 'nlb' | 'gwlb') => Object.keys(inMode(t, mode) as Obj).filter((k) => k !== 'Description' && k !== 'Tags');
    expect(inMode(t, 'instance')).toMatchObject({ NetworkInterfaceId: { Ref: 'CollectorEni' } });
    expect(props('instance')).toEqual(['NetworkInterfaceId']);
    expect(inMode(t, 'nlb')).toMatchObject({ NetworkLoadBalancerArn: { Ref: 'LoadBalancer' } });
    expect(props('nlb')).toEqual(['NetworkLoadBalancerArn']);
    expect(inMode(t, 'gwlb')).toMatchObject({ GatewayLoadBalancerEndpointId: { Ref: 'GatewayEndpoint' } });
    expect(props('gwlb')).toEqual(['GatewayLoadBalancerEndpointId']);
    // The interface is the instance's primary one, so mirrored packets reach the collector's socket.
    expect(res('Instance').Properties.NetworkInterfaces).toEqual([{ NetworkInterfaceId: { Ref: 'CollectorEni' }, DeviceIndex: '0' }]);
  });

  it('NLB: a UDP 4789 listener and a target group whose health check is the API /healthz over HTTPS', () => {
    expect(res('Listener').Properties).toMatchObject({ Protocol: 'UDP', Port: 4789 });
    const tg = res('TargetGroup').Properties;
    expect(tg).toMatchObject({ Protocol: 'UDP', Port: 4789, HealthCheckProtocol: 'HTTPS', HealthCheckPath: '/healthz' });
    expect(Number(tg.HealthCheckPort)).toBe(apiPort());
    for (const r of ['LoadBalancer', 'TargetGroup', 'Listener']) expect(res(r).Condition, r).toBe('UseNlb');
    expect(res('NlbHealthCheckIngress').Condition).toBe('UseLoadBalancer');
  });

  it('GWLB: a gateway load balancer, a GENEVE target group health-checked on /healthz over HTTPS, its endpoint service and endpoint', () => {
    for (const r of ['GatewayLoadBalancer', 'GeneveTargetGroup', 'GatewayListener', 'GatewayEndpointService', 'GatewayEndpointServicePermissions', 'GatewayEndpoint', 'GeneveIngress']) {
      expect(res(r).Condition, r).toBe('UseGwlb');
    }
    // Only this account may attach endpoints to the service.
    expect(res('GatewayEndpointServicePermissions').Properties.AllowedPrincipals).toEqual([{ 'Fn::Sub': 'arn:${AWS::Partition}:iam::${AWS::AccountId}:root' }]);
    expect(res('GatewayLoadBalancer').Properties).toMatchObject({ Type: 'gateway', Subnets: [{ Ref: 'SubnetId' }] });
    const tg = res('GeneveTargetGroup').Properties;
    // GWLB target groups are GENEVE on 6081 (RFC 8926) and health-check over TCP, HTTP or HTTPS, never GENEVE.
    expect(tg).toMatchObject({ Protocol: 'GENEVE', Port: 6081, TargetType: 'instance', Targets: [{ Id: { Ref: 'Instance' } }], HealthCheckProtocol: 'HTTPS', HealthCheckPath: '/healthz' });
    expect(Number(tg.HealthCheckPort)).toBe(apiPort());
    expect(res('GatewayListener').Properties).toEqual({ LoadBalancerArn: { Ref: 'GatewayLoadBalancer' }, DefaultActions: [{ Type: 'forward', TargetGroupArn: { Ref: 'GeneveTargetGroup' } }] });
    expect(res('GatewayEndpointService').Properties.GatewayLoadBalancerArns).toEqual([{ Ref: 'GatewayLoadBalancer' }]);
    expect(res('GatewayEndpoint').Properties).toMatchObject({ VpcEndpointType: 'GatewayLoadBalancer', ServiceName: { 'Fn::Sub': 'com.amazonaws.vpce.${AWS::Region}.${GatewayEndpointService}' } });
    expect(res('GeneveIngress').Properties).toMatchObject({ IpProtocol: 'udp', FromPort: 6081, ToPort: 6081, CidrIp: { Ref: 'VpcCidr' } });
    expect(template.Outputs.GatewayLoadBalancerEndpointId).toMatchObject({ Condition: 'UseGwlb', Value: { Ref: 'GatewayEndpoint' } });
    // The collector receives GENEVE on the target group's port in gwlb mode only.
    const vars = res('Instance').Properties.UserData['Fn::Base64']['Fn::Sub'][1] as Obj;
    expect(inMode(vars.GeneveOpts, 'gwlb')).toBe('--geneve 0.0.0.0:6081');
    expect(inMode(vars.GeneveOpts, 'instance')).toBe('');
  });
});

/** The API port of the config the instance runs. */
function apiPort(): number {
  const cfg = parseYaml(readFileSync(EXAMPLE_CONFIG, 'utf8')) as Obj;
  return parseHostPort(cfg.api.listen)!.port;
}

describe('the security group', () => {
  it('admits VXLAN only from the VPC CIDR, the API only from the API CIDR, and lets out only HTTPS', () => {
    const sg = res('SecurityGroup').Properties;
    const ingress = sg.SecurityGroupIngress.map((r: Obj) => ({ proto: r.IpProtocol, from: r.FromPort, to: r.ToPort, cidr: r.CidrIp }));
    expect(ingress).toEqual([
      { proto: 'udp', from: 4789, to: 4789, cidr: { Ref: 'VpcCidr' } },
      { proto: 'tcp', from: apiPort(), to: apiPort(), cidr: { Ref: 'ApiAllowedCidr' } },
    ]);
    expect(sg.SecurityGroupEgress.map((r: Obj) => [r.IpProtocol, r.FromPort, r.ToPort])).toEqual([['tcp', 443, 443]]);
    // Only the load-balancer modes open the API port to the VPC, for the health checks; only gwlb opens GENEVE.
    const extra = Object.values(template.Resources as Obj).filter((r) => r.Type === 'AWS::EC2::SecurityGroupIngress');
    expect(extra).toHaveLength(2);
    expect(extra[0]).toMatchObject({ Condition: 'UseLoadBalancer', Properties: { IpProtocol: 'tcp', FromPort: apiPort(), CidrIp: { Ref: 'VpcCidr' } } });
    expect(extra[1]).toMatchObject({ Condition: 'UseGwlb', Properties: { IpProtocol: 'udp', FromPort: 6081, ToPort: 6081, CidrIp: { Ref: 'VpcCidr' } } });
  });
});

describe('the instance role', () => {
  const statements = (): Obj[] => res('InstanceRole').Properties.Policies.flatMap((p: Obj) => p.PolicyDocument.Statement);
  it('may call the read-only DescribeTrafficMirror* APIs and nothing else of EC2', () => {
    const ec2 = statements().flatMap((s) => [s.Action].flat()).filter((a: string) => a.startsWith('ec2:'));
    expect(ec2).toContain('ec2:DescribeTrafficMirrorSessions'); // what detect.inventory calls
    for (const a of ec2) expect(a).toMatch(/^ec2:DescribeTrafficMirror(Sessions|Targets|Filters)$/);
    for (const s of statements()) expect(s.Effect).toBe('Allow');
  });
  it('reads only its own secrets and the install archives', () => {
    const sm = statements().find((s) => s.Action === 'secretsmanager:GetSecretValue')!;
    expect(resolveIf(sm.Resource, 'HasWebhook', true)).toEqual(['AdminTokenSecret', 'IngestTokenSecret', 'WebhookSigningSecret', 'WebhookUrlSecret'].map((r) => ({ Ref: r })));
    const s3 = statements().find((s) => s.Action === 's3:GetObject')!;
    expect(s3.Resource['Fn::Sub']).toBe('arn:${AWS::Partition}:s3:::${ArtifactBucket}/mirrorguard/*');
    // ... which is where the archive must be.
    expect(new RegExp(`^(?:${template.Parameters.ArtifactKey.AllowedPattern})$`).test('mirrorguard/mirrorguard-0.1.0.tar.gz')).toBe(true);
    expect(new RegExp(`^(?:${template.Parameters.ArtifactKey.AllowedPattern})$`).test('other/mirrorguard-0.1.0.tar.gz')).toBe(false);
  });
  it('requires IMDSv2 tokens', () => {
    expect(res('LaunchTemplate').Properties.LaunchTemplateData.MetadataOptions).toMatchObject({ HttpTokens: 'required', HttpPutResponseHopLimit: 1 });
    expect(res('Instance').Properties.LaunchTemplate.LaunchTemplateId).toEqual({ Ref: 'LaunchTemplate' });
  });
});

describe('EventBridge wiring', () => {
  it('matches exactly the traffic-mirroring calls the detection rules read', () => {
    const pattern = res('CloudTrailRule').Properties.EventPattern;
    expect(pattern.source).toEqual(['aws.ec2']);
    expect(pattern['detail-type']).toEqual(['AWS API Call via CloudTrail']);
    expect(pattern.detail.eventSource).toEqual(['ec2.amazonaws.com']);
    expect([...pattern.detail.eventName].sort()).toEqual([...MUTATING_CALLS].sort());
    // No errorCode filter: failed calls and DryRun probes are what mirror-attempt-failed reads.
    expect(Object.keys(pattern.detail).sort()).toEqual(['eventName', 'eventSource']);
  });

  it('posts to the API destination with a dead-letter queue, through a connection holding the ingest token from Secrets Manager', () => {
    const target = res('CloudTrailRule').Properties.Targets[0];
    expect(target.Arn).toEqual({ 'Fn::GetAtt': ['CloudTrailApiDestination', 'Arn'] });
    expect(target.DeadLetterConfig.Arn).toEqual({ 'Fn::GetAtt': ['CloudTrailDeadLetterQueue', 'Arn'] });
    expect(res('CloudTrailApiDestination').Properties).toMatchObject({ HttpMethod: 'POST', InvocationEndpoint: { Ref: 'CloudTrailIngestUrl' } });
    const conn = res('CloudTrailConnection').Properties;
    expect(conn.AuthorizationType).toBe('API_KEY');
    // The API reads "Authorization: Bearer <token>" (RFC 6750 section 2.1).
    expect(conn.AuthParameters.ApiKeyAuthParameters.ApiKeyName).toBe('Authorization');
    expect(conn.AuthParameters.ApiKeyAuthParameters.ApiKeyValue).toEqual({ 'Fn::Sub': 'Bearer {{resolve:secretsmanager:${IngestTokenSecret}:SecretString}}' });
  });

  it('exists only when an ingest URL is given, and that URL must be https and end in /v1/cloudtrail', () => {
    for (const r of ['CloudTrailConnection', 'CloudTrailApiDestination', 'CloudTrailRule', 'CloudTrailRuleRole', 'CloudTrailDeadLetterQueue', 'CloudTrailDeadLetterQueuePolicy']) {
      expect(res(r).Condition, r).toBe('HasIngestUrl');
    }
    const p = template.Parameters.CloudTrailIngestUrl;
    expect(p.Default).toBe('');
    const re = new RegExp(`^(?:${p.AllowedPattern})$`);
    expect(re.test('https://mg.example.com/v1/cloudtrail')).toBe(true);
    expect(re.test('http://mg.example.com/v1/cloudtrail')).toBe(false);
    expect(re.test('https://mg.example.com/v1/findings')).toBe(false);
  });
});

describe('the first-boot script (UserData)', () => {
  const script = (): string => {
    const sub = res('Instance').Properties.UserData['Fn::Base64']['Fn::Sub'];
    const [text, vars] = sub as [string, Obj];
    // What CloudFormation hands the instance, with made-up values in place of the substitutions.
    return text.replace(/\$\{([^}!]+)\}/g, (_m: string, name: string) => (name in vars ? 'arn:aws:secretsmanager:eu-central-1:111122223333:secret:x' : name.includes('::') ? 'eu-central-1' : `value-of-${name.replace('.', '-')}`));
  };

  itNeeds(['bash'], 'is valid bash', () => {
    const r = spawnSync('bash', ['-n'], { input: script(), encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('installs with deploy/install.sh and writes every variable the example config names', () => {
    const s = script();
    expect(s).toContain('/opt/mirrorguard/deploy/install.sh');
    expect(existsSync(join(PROJECT_ROOT, 'deploy', 'install.sh'))).toBe(true);
    const cfg = parseYaml(readFileSync(EXAMPLE_CONFIG, 'utf8')) as Obj;
    const names = [...cfg.api.tokens.map((t: Obj) => t.tokenEnv), 'MIRRORGUARD_WEBHOOK_SECRET', 'AWS_REGION', 'MIRRORGUARD_OPTS'];
    for (const n of names) expect(s, n).toMatch(new RegExp(`^${n}=`, 'm'));
    // Secrets come from Secrets Manager at boot, never from the template text.
    expect(s).toMatch(/^MIRRORGUARD_INGEST_TOKEN=\$\(secret '/m);
  });

  itNeeds(['bash'], 'installs the capture-ring drop-in when Receiver is af-packet (the default), not for socket', () => {
    expect(template.Parameters.Receiver.Default).toBe('af-packet');
    for (const [receiver, flag] of [['af-packet', true], ['socket', false]] as const) {
      // Run the two lines that decide, with the parameter substituted, and print the flag they pass.
      const s = script().replace(/value-of-Receiver/g, receiver);
      const lines = s.split('\n').filter((l) => /^\s*(ring=|if \[ '.*' = af-packet \])/.test(l));
      expect(lines.length).toBe(2);
      const r = spawnSync('bash', ['-c', `${lines.join('\n')}\necho "[$ring]"`], { encoding: 'utf8' });
      expect(r.stdout.trim()).toBe(flag ? '[--af-packet]' : '[]');
    }
    expect(script()).toMatch(/install\.sh .*\$ring$/m);
  });

  it('reports to CloudFormation only once /healthz answers on the API port', () => {
    const s = script();
    expect(s).toContain(`https://127.0.0.1:${apiPort()}/healthz`);
    expect(res('Instance').CreationPolicy.ResourceSignal.Count).toBe(1);
  });
});
