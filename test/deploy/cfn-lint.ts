/**
 * A small CloudFormation template checker against the CloudFormation resource specification that
 * @aws-cdk/cfnspec ships (the cfn-lint npm package predates the traffic-mirroring resources). It checks
 * what makes a stack fail at create time rather than at review time:
 *
 *   - every resource type exists in the spec; every property is known; required properties are present;
 *     values have the spec's shape (a list where a list goes, an object where a property type goes, a
 *     number, boolean or string where a primitive goes), recursively through property types;
 *   - every Ref, Fn::GetAtt and Fn::Sub variable names a parameter, a pseudo parameter, a resource or (for
 *     GetAtt) an attribute the spec lists; DependsOn names resources;
 *   - every Condition used (on a resource or output, in Fn::If, in a condition) is defined, and a
 *     reference to a conditional resource happens only where that condition holds (the same condition on
 *     the referrer, or the true branch of an Fn::If on it): CloudFormation refuses anything else;
 *   - parameters: known types, defaults that satisfy their own AllowedPattern / AllowedValues / MinValue /
 *     MaxValue, and every parameter used somewhere.
 *
 * It returns problems as `path: message` strings (empty when the template is fine), so a test shows all
 * of them at once.
 */
import { isMap, isScalar, isSeq, parse, type CollectionTag, type ScalarTag } from 'yaml';

export interface PropertySpec {
  Required?: boolean;
  PrimitiveType?: string;
  Type?: string;
  ItemType?: string;
  PrimitiveItemType?: string;
}
export interface CfnSpec {
  ResourceTypes: Record<string, { Properties?: Record<string, PropertySpec>; Attributes?: Record<string, unknown> }>;
  PropertyTypes: Record<string, { Properties?: Record<string, PropertySpec>; PrimitiveType?: string; Type?: string; ItemType?: string }>;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

/** CloudFormation's YAML short forms (`!Ref X`, `!GetAtt A.B`, `!Sub ...`) as their long `Fn::` forms. */
const SHORT_FORMS: Record<string, string> = {
  Ref: 'Ref', Condition: 'Condition', GetAtt: 'Fn::GetAtt', Sub: 'Fn::Sub', If: 'Fn::If', Equals: 'Fn::Equals', Not: 'Fn::Not',
  And: 'Fn::And', Or: 'Fn::Or', Join: 'Fn::Join', Select: 'Fn::Select', Split: 'Fn::Split', Base64: 'Fn::Base64', GetAZs: 'Fn::GetAZs',
  FindInMap: 'Fn::FindInMap', ImportValue: 'Fn::ImportValue', Cidr: 'Fn::Cidr',
};

function cfnTags(): (ScalarTag | CollectionTag)[] {
  const tags: (ScalarTag | CollectionTag)[] = [];
  for (const [short, long] of Object.entries(SHORT_FORMS)) {
    const tag = `!${short}`;
    tags.push({
      tag,
      resolve: (s: string) => (long === 'Fn::GetAtt' ? { [long]: splitGetAtt(s) } : { [long]: s }),
    } as ScalarTag);
    for (const collection of ['seq', 'map'] as const) {
      tags.push({
        tag,
        collection,
        resolve: (node: unknown) => ({ [long]: (isSeq(node) || isMap(node) ? node.toJSON() : isScalar(node) ? node.value : node) as Json }),
      } as CollectionTag);
    }
  }
  return tags;
}

function splitGetAtt(s: string): string[] {
  const i = s.indexOf('.');
  return i < 0 ? [s] : [s.slice(0, i), s.slice(i + 1)];
}

/** Parse a CloudFormation YAML (or JSON) template, short-form intrinsics included. */
export function parseTemplate(text: string): Obj {
  return parse(text, { customTags: cfnTags(), uniqueKeys: true }) as Obj;
}

const TOP_KEYS = new Set(['AWSTemplateFormatVersion', 'Description', 'Metadata', 'Parameters', 'Rules', 'Mappings', 'Conditions', 'Transform', 'Resources', 'Outputs']);
const RESOURCE_KEYS = new Set(['Type', 'Properties', 'DependsOn', 'Condition', 'Metadata', 'DeletionPolicy', 'UpdateReplacePolicy', 'CreationPolicy', 'UpdatePolicy']);
const OUTPUT_KEYS = new Set(['Description', 'Value', 'Export', 'Condition']);
const PARAMETER_KEYS = new Set(['Type', 'Description', 'Default', 'AllowedValues', 'AllowedPattern', 'ConstraintDescription', 'MinLength', 'MaxLength', 'MinValue', 'MaxValue', 'NoEcho']);
const PSEUDO = new Set(['AWS::AccountId', 'AWS::NotificationARNs', 'AWS::NoValue', 'AWS::Partition', 'AWS::Region', 'AWS::StackId', 'AWS::StackName', 'AWS::URLSuffix']);
const PARAMETER_TYPES = /^(String|Number|List<Number>|CommaDelimitedList|AWS::EC2::[A-Za-z]+::[A-Za-z]+(::Id)?|AWS::Route53::HostedZone::Id|List<AWS::EC2::[A-Za-z]+::[A-Za-z]+(::Id)?>|AWS::SSM::Parameter::Name|AWS::SSM::Parameter::Value<[^>]+>)$/;
/** Functions allowed inside Conditions, and everywhere else. */
const CONDITION_FNS = new Set(['Fn::Equals', 'Fn::Not', 'Fn::And', 'Fn::Or', 'Condition', 'Ref', 'Fn::FindInMap', 'Fn::Sub', 'Fn::Join', 'Fn::Select', 'Fn::Split']);
const VALUE_FNS = new Set(['Ref', 'Fn::GetAtt', 'Fn::Sub', 'Fn::If', 'Fn::Join', 'Fn::Select', 'Fn::Split', 'Fn::Base64', 'Fn::GetAZs', 'Fn::FindInMap', 'Fn::ImportValue', 'Fn::Cidr', 'Fn::Equals', 'Fn::Not', 'Fn::And', 'Fn::Or', 'Condition']);

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
/** A `{ "Ref": ... }` or `{ "Fn::X": ... }` object: one key that names a function. */
function intrinsicName(v: unknown): string | undefined {
  if (!isObj(v)) return undefined;
  const keys = Object.keys(v);
  return keys.length === 1 && (keys[0] === 'Ref' || keys[0]!.startsWith('Fn::') || keys[0] === 'Condition') ? keys[0] : undefined;
}

/** Variables of an Fn::Sub string: `${Name}` and `${Res.Attr}`; `${!Literal}` is not a variable. */
export function subVariables(s: string): string[] {
  const out: string[] = [];
  for (const m of s.matchAll(/\$\{([^}]*)\}/g)) if (!m[1]!.startsWith('!')) out.push(m[1]!.trim());
  return out;
}

export function validateTemplate(t: Obj, spec: CfnSpec): string[] {
  const problems: string[] = [];
  const p = (path: string, msg: string) => problems.push(`${path}: ${msg}`);

  for (const k of Object.keys(t)) if (!TOP_KEYS.has(k)) p(k, 'unknown top-level section');
  const params = isObj(t.Parameters) ? t.Parameters : {};
  const conditions = isObj(t.Conditions) ? t.Conditions : {};
  const resources = isObj(t.Resources) ? t.Resources : {};
  const outputs = isObj(t.Outputs) ? t.Outputs : {};
  const mappings = isObj(t.Mappings) ? t.Mappings : {};
  if (Object.keys(resources).length === 0) p('Resources', 'a template needs at least one resource');
  const used = new Set<string>();
  const resourceCondition = (name: string): string | undefined => {
    const r = resources[name];
    return isObj(r) && typeof r.Condition === 'string' ? r.Condition : undefined;
  };

  // ---- parameters --------------------------------------------------------------------------------------
  for (const [name, def] of Object.entries(params)) {
    const path = `Parameters.${name}`;
    if (!isObj(def)) {
      p(path, 'must be an object');
      continue;
    }
    for (const k of Object.keys(def)) if (!PARAMETER_KEYS.has(k)) p(`${path}.${k}`, 'unknown parameter attribute');
    if (typeof def.Type !== 'string' || !PARAMETER_TYPES.test(def.Type)) p(`${path}.Type`, `unknown parameter type ${JSON.stringify(def.Type)}`);
    if (def.Default !== undefined && (def.Type === 'String' || def.Type === 'Number')) {
      const d = String(def.Default);
      if (typeof def.AllowedPattern === 'string' && !new RegExp(`^(?:${def.AllowedPattern})$`).test(d)) p(`${path}.Default`, `${JSON.stringify(d)} does not match AllowedPattern`);
      if (Array.isArray(def.AllowedValues) && !def.AllowedValues.map(String).includes(d)) p(`${path}.Default`, `${JSON.stringify(d)} is not in AllowedValues`);
      if (def.Type === 'Number') {
        const n = Number(d);
        if (!Number.isFinite(n)) p(`${path}.Default`, 'is not a number');
        if (typeof def.MinValue === 'number' && n < def.MinValue) p(`${path}.Default`, `is below MinValue ${def.MinValue}`);
        if (typeof def.MaxValue === 'number' && n > def.MaxValue) p(`${path}.Default`, `is above MaxValue ${def.MaxValue}`);
      }
    }
  }

  // ---- references -------------------------------------------------------------------------------------
  /** `guards`: conditions known to hold where this value is evaluated. */
  const checkRefTarget = (path: string, name: string, guards: ReadonlySet<string>, inCondition: boolean) => {
    if (PSEUDO.has(name)) return;
    if (name in params) {
      used.add(name);
      return;
    }
    if (inCondition) {
      p(path, `Conditions may refer to parameters only, not ${JSON.stringify(name)}`);
      return;
    }
    if (!(name in resources)) {
      p(path, `refers to ${JSON.stringify(name)}, which is not a parameter, pseudo parameter or resource`);
      return;
    }
    const c = resourceCondition(name);
    if (c !== undefined && !guards.has(c)) p(path, `refers to ${name}, which exists only when ${c} holds; guard it with that Condition or Fn::If [${c}, ...]`);
  };
  const checkGetAtt = (path: string, res: string, attr: string, guards: ReadonlySet<string>) => {
    checkRefTarget(path, res, guards, false);
    const r = resources[res];
    if (!isObj(r) || typeof r.Type !== 'string') return;
    if (r.Type.startsWith('Custom::') || r.Type === 'AWS::CloudFormation::CustomResource') return;
    const attrs = spec.ResourceTypes[r.Type]?.Attributes ?? {};
    // Nested attributes (`Endpoint.Address`) are listed whole in the spec.
    if (!(attr in attrs)) p(path, `${r.Type} has no attribute ${JSON.stringify(attr)}; it has: ${Object.keys(attrs).join(', ') || 'none'}`);
  };
  const checkCondition = (path: string, name: unknown) => {
    if (typeof name !== 'string' || !(name in conditions)) p(path, `condition ${JSON.stringify(name)} is not defined in Conditions`);
  };

  /** Walk any value, checking every intrinsic function in it. */
  const walk = (v: unknown, path: string, guards: ReadonlySet<string>, inCondition = false): void => {
    const fn = intrinsicName(v);
    if (fn !== undefined) {
      const arg = (v as Obj)[fn];
      const at = `${path}.${fn}`;
      if (!(inCondition ? CONDITION_FNS : VALUE_FNS).has(fn)) p(at, `${fn} is not allowed here`);
      switch (fn) {
        case 'Ref':
          if (typeof arg !== 'string') p(at, 'takes a logical name');
          else checkRefTarget(at, arg, guards, inCondition);
          return;
        case 'Condition':
          checkCondition(at, arg);
          return;
        case 'Fn::GetAtt': {
          const parts = typeof arg === 'string' ? splitGetAtt(arg) : arg;
          if (!Array.isArray(parts) || parts.length !== 2 || typeof parts[0] !== 'string') p(at, 'takes [LogicalName, Attribute]');
          else if (typeof parts[1] === 'string') checkGetAtt(at, parts[0], parts[1], guards);
          else walk(parts[1], `${at}[1]`, guards);
          return;
        }
        case 'Fn::Sub': {
          const [text, vars] = typeof arg === 'string' ? [arg, {}] : Array.isArray(arg) && arg.length === 2 && typeof arg[0] === 'string' && isObj(arg[1]) ? [arg[0], arg[1]] : [undefined, undefined];
          if (text === undefined || vars === undefined) {
            p(at, 'takes a string, or [string, {Name: value}]');
            return;
          }
          for (const [k, val] of Object.entries(vars)) walk(val, `${at}[1].${k}`, guards);
          const seen = new Set<string>();
          for (const name of subVariables(text)) {
            if (seen.has(name)) continue;
            seen.add(name);
            if (name in vars) continue;
            const dot = name.indexOf('.');
            if (dot > 0 && !PSEUDO.has(name)) checkGetAtt(`${at} \${${name}}`, name.slice(0, dot), name.slice(dot + 1), guards);
            else checkRefTarget(`${at} \${${name}}`, name, guards, false);
          }
          for (const k of Object.keys(vars)) if (!seen.has(k)) p(`${at}[1].${k}`, 'variable is never used in the string');
          return;
        }
        case 'Fn::If': {
          if (!Array.isArray(arg) || arg.length !== 3 || typeof arg[0] !== 'string') {
            p(at, 'takes [Condition, value if true, value if false]');
            return;
          }
          checkCondition(`${at}[0]`, arg[0]);
          walk(arg[1], `${at}[1]`, new Set([...guards, arg[0]]));
          walk(arg[2], `${at}[2]`, guards);
          return;
        }
        case 'Fn::Equals':
          if (!Array.isArray(arg) || arg.length !== 2) p(at, 'takes two values');
          break;
        case 'Fn::Not':
          if (!Array.isArray(arg) || arg.length !== 1) p(at, 'takes a one-element list');
          break;
        case 'Fn::And':
        case 'Fn::Or':
          if (!Array.isArray(arg) || arg.length < 2 || arg.length > 10) p(at, 'takes 2 to 10 conditions');
          break;
        case 'Fn::Join':
          if (!Array.isArray(arg) || arg.length !== 2 || typeof arg[0] !== 'string') p(at, 'takes [delimiter, list]');
          break;
        case 'Fn::FindInMap':
          if (!Array.isArray(arg) || arg.length !== 3) p(at, 'takes [MapName, TopKey, SecondKey]');
          else if (typeof arg[0] === 'string' && !(arg[0] in mappings)) p(at, `mapping ${JSON.stringify(arg[0])} is not defined`);
          break;
      }
      walk(arg, at, guards, inCondition);
      return;
    }
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${path}[${i}]`, guards, inCondition));
    else if (isObj(v)) for (const [k, x] of Object.entries(v)) walk(x, `${path}.${k}`, guards, inCondition);
  };

  // ---- conditions ---------------------------------------------------------------------------------------
  for (const [name, expr] of Object.entries(conditions)) walk(expr, `Conditions.${name}`, new Set(), true);

  // ---- property values against the spec -----------------------------------------------------------------
  const propertyType = (resType: string, typeName: string) =>
    spec.PropertyTypes[`${resType}.${typeName}`] ?? spec.PropertyTypes[typeName];

  const checkPrimitive = (path: string, prim: string, v: unknown) => {
    if (intrinsicName(v) !== undefined) return;
    const ok =
      prim === 'Json'
        ? isObj(v) || typeof v === 'string'
        : prim === 'Boolean'
          ? typeof v === 'boolean' || v === 'true' || v === 'false'
          : prim === 'Integer' || prim === 'Long'
            ? (typeof v === 'number' && Number.isInteger(v)) || (typeof v === 'string' && /^-?\d+$/.test(v))
            : prim === 'Double'
              ? typeof v === 'number' || (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v)))
              : // String (and Timestamp): CloudFormation turns scalars into strings.
                typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
    if (!ok) p(path, `must be ${prim}, got ${JSON.stringify(v)}`);
  };

  const checkProperties = (path: string, resType: string, props: Record<string, PropertySpec>, value: unknown) => {
    if (intrinsicName(value) !== undefined) return;
    if (!isObj(value)) {
      p(path, `must be an object, got ${JSON.stringify(value)}`);
      return;
    }
    for (const [k, v] of Object.entries(value)) {
      const ps = props[k];
      if (!ps) {
        p(`${path}.${k}`, `unknown property; known: ${Object.keys(props).sort().join(', ')}`);
        continue;
      }
      checkValue(`${path}.${k}`, resType, ps, v);
    }
    for (const [k, ps] of Object.entries(props)) if (ps.Required && !(k in value)) p(`${path}.${k}`, 'required property is missing');
  };

  const checkValue = (path: string, resType: string, ps: PropertySpec, v: unknown): void => {
    // Fn::If picks one of two values of this same property: check both (AWS::NoValue removes it).
    const fn = intrinsicName(v);
    if (fn === 'Fn::If') {
      const arg = (v as Obj)[fn];
      if (Array.isArray(arg) && arg.length === 3) {
        for (const i of [1, 2]) {
          const branch = arg[i];
          if (!(isObj(branch) && branch.Ref === 'AWS::NoValue')) checkValue(`${path}.Fn::If[${i}]`, resType, ps, branch);
        }
      }
      return;
    }
    if (fn !== undefined) return;
    if (ps.PrimitiveType) return checkPrimitive(path, ps.PrimitiveType, v);
    if (ps.Type === 'List' || ps.Type === 'Map') {
      const items = ps.Type === 'List' ? (Array.isArray(v) ? v.map((x, i) => [`[${i}]`, x] as const) : null) : isObj(v) ? Object.entries(v).map(([k, x]) => [`.${k}`, x] as const) : null;
      if (items === null) {
        p(path, `must be a ${ps.Type === 'List' ? 'list' : 'map'}, got ${JSON.stringify(v)}`);
        return;
      }
      for (const [suffix, x] of items) {
        if (isObj(x) && x.Ref === 'AWS::NoValue') continue;
        if (ps.PrimitiveItemType) checkPrimitive(`${path}${suffix}`, ps.PrimitiveItemType, x);
        else if (ps.ItemType) checkValue(`${path}${suffix}`, resType, { Type: ps.ItemType }, x);
      }
      return;
    }
    if (ps.Type) {
      const pt = propertyType(resType, ps.Type);
      if (!pt) {
        p(path, `the spec has no property type ${resType}.${ps.Type}`);
        return;
      }
      if (pt.Properties) checkProperties(path, resType, pt.Properties, v);
      else if (pt.PrimitiveType) checkPrimitive(path, pt.PrimitiveType, v);
    }
  };

  // ---- resources -----------------------------------------------------------------------------------------
  for (const [name, r] of Object.entries(resources)) {
    const path = `Resources.${name}`;
    if (!/^[A-Za-z0-9]+$/.test(name)) p(path, 'logical names are alphanumeric');
    if (!isObj(r)) {
      p(path, 'must be an object');
      continue;
    }
    for (const k of Object.keys(r)) if (!RESOURCE_KEYS.has(k)) p(`${path}.${k}`, 'unknown resource attribute');
    if (r.Condition !== undefined) checkCondition(`${path}.Condition`, r.Condition);
    const guards = new Set(typeof r.Condition === 'string' ? [r.Condition] : []);
    const deps = r.DependsOn === undefined ? [] : Array.isArray(r.DependsOn) ? r.DependsOn : [r.DependsOn];
    for (const d of deps) if (typeof d !== 'string' || !(d in resources)) p(`${path}.DependsOn`, `${JSON.stringify(d)} is not a resource`);
    const type = r.Type;
    if (typeof type !== 'string') {
      p(`${path}.Type`, 'required');
      continue;
    }
    walk(r.Properties ?? {}, `${path}.Properties`, guards);
    if (type.startsWith('Custom::') || type === 'AWS::CloudFormation::CustomResource') continue;
    const rs = spec.ResourceTypes[type];
    if (!rs) {
      p(`${path}.Type`, `${type} is not in the CloudFormation resource specification`);
      continue;
    }
    checkProperties(`${path}.Properties`, type, rs.Properties ?? {}, r.Properties ?? {});
  }

  // ---- outputs --------------------------------------------------------------------------------------------
  for (const [name, o] of Object.entries(outputs)) {
    const path = `Outputs.${name}`;
    if (!isObj(o)) {
      p(path, 'must be an object');
      continue;
    }
    for (const k of Object.keys(o)) if (!OUTPUT_KEYS.has(k)) p(`${path}.${k}`, 'unknown output attribute');
    if (!('Value' in o)) p(`${path}.Value`, 'required');
    if (o.Condition !== undefined) checkCondition(`${path}.Condition`, o.Condition);
    walk(o, path, new Set(typeof o.Condition === 'string' ? [o.Condition] : []));
  }

  for (const name of Object.keys(params)) if (!used.has(name)) p(`Parameters.${name}`, 'is never used');
  return problems;
}
