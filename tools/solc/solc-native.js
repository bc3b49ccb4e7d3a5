#!/usr/bin/env node
// A native-solc command line over the npm `solc` package (its WebAssembly build).
//
// py-solc-x and ape-solidity call `--version` and `--standard-json` (stdin, --base-path,
// --include-path, --allow-paths); slither (crytic-compile) calls `--combined-json` with
// source files and remappings. The `solcjs` command line is not a drop-in for either, so
// this wrapper speaks the subset of the native interface those tools use.
//
// Output is written with a completion callback and the exit status is set through
// `process.exitCode`: calling process.exit() right after a large write truncates piped
// stdout at 64 KiB.
//
// Which npm package compiles is set by tools/solc/install.sh in the generated executable:
// SOLC_NATIVE_PACKAGE (default `solc`; e.g. `solc-0.8.19`, an npm alias of solc@0.8.19) and,
// for a compiler older than the EVM the project targets, SOLC_NATIVE_EVM_CEILING: the newest
// EVM version that compiler knows. A request for a later EVM version is compiled for the
// ceiling instead (solc 0.8.19 knows nothing past `paris`, and its code generator emits no
// opcode added since, so its `paris` code is what it would give for any later fork). Without
// these variables the wrapper is the plain npm `solc` package.
'use strict';

const fs = require('fs');
const path = require('path');
const solc = require(process.env.SOLC_NATIVE_PACKAGE || 'solc');

// EVM versions in order, as solc names them.
const EVM_VERSIONS = [
  'homestead',
  'tangerineWhistle',
  'spuriousDragon',
  'byzantium',
  'constantinople',
  'petersburg',
  'istanbul',
  'berlin',
  'london',
  'paris',
  'shanghai',
  'cancun',
  'prague',
  'osaka',
];

// The EVM version to compile for: `requested`, or the ceiling where it is later than that.
function capEvmVersion(requested) {
  const ceiling = process.env.SOLC_NATIVE_EVM_CEILING;
  if (!ceiling || !requested) return requested;
  const at = EVM_VERSIONS.indexOf(requested);
  const top = EVM_VERSIONS.indexOf(ceiling);
  return at > top && top >= 0 ? ceiling : requested;
}

const USAGE = `solc, the solidity compiler commandline interface (npm solc wrapper)
Usage: solc --version
       solc --standard-json [--base-path P] [--include-path P]... [--allow-paths P,...] [input.json]
       solc [remapping...] file.sol... --combined-json abi,ast,bin,... [options]
Options: --base-path, --include-path, --allow-paths, --evm-version, --optimize,
         --optimize-runs, --via-ir, --pretty-json`;

class UsageError extends Error {}

function nativeVersion() {
  // solc.version() is e.g. "0.8.37+commit.f401782d.Emscripten.clang"; the native format
  // is "0.8.37+commit.f401782d.<platform>". Tools match the "x.y.z+commit.hash" part.
  return solc.version();
}

function parseArgs(argv) {
  const opts = {
    mode: null,
    basePath: null,
    includePaths: [],
    allowPaths: [],
    files: [],
    remappings: [],
    combined: null,
    evmVersion: null,
    optimize: false,
    optimizeRuns: null,
    viaIR: false,
    pretty: false,
  };
  const takesValue = new Set([
    '--base-path',
    '--include-path',
    '--allow-paths',
    '--combined-json',
    '--evm-version',
    '--optimize-runs',
  ]);
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let value = null;
    if (arg.startsWith('--') && arg.includes('=')) {
      const eq = arg.indexOf('=');
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    } else if (takesValue.has(arg)) {
      if (i + 1 >= argv.length) throw new UsageError(`Option ${arg} needs a value.`);
      value = argv[++i];
    }
    switch (arg) {
      case '--version':
        opts.mode = opts.mode || 'version';
        break;
      case '--help':
        opts.mode = opts.mode || 'help';
        break;
      case '--standard-json':
        opts.mode = 'standard-json';
        break;
      case '--combined-json':
        opts.mode = 'combined-json';
        opts.combined = value.split(',').filter(Boolean);
        break;
      case '--base-path':
        opts.basePath = value;
        break;
      case '--include-path':
        opts.includePaths.push(value);
        break;
      case '--allow-paths':
        opts.allowPaths.push(...value.split(',').filter(Boolean));
        break;
      case '--evm-version':
        opts.evmVersion = value;
        break;
      case '--optimize':
        opts.optimize = true;
        break;
      case '--optimize-runs':
        opts.optimizeRuns = Number(value);
        if (!Number.isInteger(opts.optimizeRuns) || opts.optimizeRuns < 0) {
          throw new UsageError(`Invalid option to --optimize-runs: ${value}`);
        }
        break;
      case '--via-ir':
      case '--experimental-via-ir':
        opts.viaIR = true;
        break;
      case '--pretty-json':
        opts.pretty = true;
        break;
      case '--no-color':
      case '--color':
        break;
      case '-':
        opts.files.push('-');
        break;
      default:
        if (arg.startsWith('-')) throw new UsageError(`unrecognised option '${arg}'`);
        if (arg.includes('=') && !fs.existsSync(arg)) opts.remappings.push(arg);
        else opts.files.push(arg);
    }
  }
  return opts;
}

// Resolve an import the way native solc's file reader does: a source unit name is looked
// up under the base path first, then under each include path.
function makeImportCallback(basePath, includePaths) {
  const roots = [basePath || process.cwd(), ...includePaths];
  return function findImports(sourceUnitName) {
    const candidates = path.isAbsolute(sourceUnitName)
      ? [sourceUnitName]
      : roots.map((root) => path.resolve(root, sourceUnitName));
    for (const candidate of candidates) {
      try {
        return { contents: fs.readFileSync(candidate, 'utf8') };
      } catch (err) {
        if (err.code !== 'ENOENT' && err.code !== 'EISDIR') return { error: String(err) };
      }
    }
    return { error: `File not found. Searched the following locations: ${roots.map((r) => `"${r}"`).join(', ')}.` };
  };
}

function compile(input, opts) {
  const settings = input && input.settings;
  if (settings && capEvmVersion(settings.evmVersion) !== settings.evmVersion) {
    settings.evmVersion = capEvmVersion(settings.evmVersion);
  }
  const output = solc.compile(JSON.stringify(input), {
    import: makeImportCallback(opts.basePath, opts.includePaths),
  });
  return JSON.parse(output);
}

function readStdin() {
  return fs.readFileSync(0, 'utf8');
}

function standardJson(opts) {
  const file = opts.files.find((f) => f !== '-');
  const text = file ? fs.readFileSync(file, 'utf8') : readStdin();
  let input;
  try {
    input = JSON.parse(text);
  } catch (err) {
    // Native solc answers malformed input with a JSON error object and exit status 0.
    return {
      errors: [
        {
          component: 'general',
          formattedMessage: `Error parsing input JSON: ${err.message}`,
          message: `Error parsing input JSON: ${err.message}`,
          severity: 'error',
          type: 'JSONError',
        },
      ],
    };
  }
  return compile(input, opts);
}

// Map combined-json field names to standard-json output selections.
const COMBINED_FIELDS = {
  abi: ['abi'],
  bin: ['evm.bytecode.object'],
  'bin-runtime': ['evm.deployedBytecode.object'],
  srcmap: ['evm.bytecode.sourceMap'],
  'srcmap-runtime': ['evm.deployedBytecode.sourceMap'],
  userdoc: ['userdoc'],
  devdoc: ['devdoc'],
  hashes: ['evm.methodIdentifiers'],
  metadata: ['metadata'],
  'storage-layout': ['storageLayout'],
  asm: ['evm.legacyAssembly'],
  opcodes: ['evm.bytecode.opcodes'],
  'function-debug': ['evm.bytecode.functionDebugData'],
  'function-debug-runtime': ['evm.deployedBytecode.functionDebugData'],
  'generated-sources': ['evm.bytecode.generatedSources'],
  'generated-sources-runtime': ['evm.deployedBytecode.generatedSources'],
};

function normalizeSourceName(file, basePath) {
  let name = file;
  if (basePath && path.isAbsolute(file)) {
    const rel = path.relative(path.resolve(basePath), file);
    if (!rel.startsWith('..')) name = rel;
  }
  return path.normalize(name).replace(/^\.\//, '');
}

function combinedJson(opts) {
  const fields = opts.combined;
  for (const field of fields) {
    if (field !== 'ast' && field !== 'compact-format' && !COMBINED_FIELDS[field]) {
      throw new UsageError(`Invalid option to --combined-json: ${field}`);
    }
  }
  const files = opts.files.filter((f) => f !== '-');
  if (files.length === 0) throw new UsageError('No input files given.');
  const sources = {};
  for (const file of files) {
    sources[normalizeSourceName(file, opts.basePath)] = { content: fs.readFileSync(file, 'utf8') };
  }
  const contractOutputs = fields.flatMap((f) => COMBINED_FIELDS[f] || []);
  const settings = {
    remappings: opts.remappings,
    optimizer: { enabled: opts.optimize, runs: opts.optimizeRuns ?? 200 },
    outputSelection: { '*': { '*': contractOutputs, '': fields.includes('ast') ? ['ast'] : [] } },
  };
  if (opts.evmVersion) settings.evmVersion = opts.evmVersion;
  if (opts.viaIR) settings.viaIR = true;
  const out = compile({ language: 'Solidity', sources, settings }, opts);

  const errors = out.errors || [];
  const messages = errors.map((e) => e.formattedMessage || e.message).join('\n');
  if (errors.some((e) => e.severity === 'error')) return { ok: false, stderr: messages };

  const result = { contracts: {}, sourceList: [], sources: {}, version: nativeVersion() };
  const get = (obj, dotted) => dotted.split('.').reduce((o, k) => (o == null ? o : o[k]), obj);
  for (const [source, contracts] of Object.entries(out.contracts || {})) {
    for (const [name, c] of Object.entries(contracts)) {
      const entry = {};
      for (const field of fields) {
        const selection = COMBINED_FIELDS[field];
        if (!selection) continue;
        const value = get(c, selection[0]);
        entry[field] = value === undefined ? (field === 'abi' ? [] : '') : value;
      }
      result.contracts[`${source}:${name}`] = entry;
    }
  }
  const ordered = Object.entries(out.sources || {}).sort((a, b) => a[1].id - b[1].id);
  for (const [source, info] of ordered) {
    result.sourceList.push(source);
    result.sources[source] = fields.includes('ast') ? { AST: info.ast, id: info.id } : { id: info.id };
  }
  return { ok: true, json: result, stderr: messages };
}

function write(stream, text, done) {
  if (!text) return done();
  stream.write(text, done);
}

function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.exitCode = 1;
    write(process.stderr, `${err.message}\n`, () => {});
    return;
  }
  try {
    if (opts.mode === 'version') {
      write(process.stdout, `solc, the solidity compiler commandline interface\nVersion: ${nativeVersion()}\n`, () => {});
    } else if (opts.mode === 'help' || opts.mode === null) {
      process.exitCode = opts.mode === 'help' ? 0 : 1;
      write(opts.mode === 'help' ? process.stdout : process.stderr, `${USAGE}\n`, () => {});
    } else if (opts.mode === 'standard-json') {
      const out = standardJson(opts);
      write(process.stdout, `${JSON.stringify(out, null, opts.pretty ? 2 : 0)}\n`, () => {});
    } else {
      const res = combinedJson(opts);
      if (!res.ok) {
        process.exitCode = 1;
        write(process.stderr, `${res.stderr}\n`, () => {});
      } else {
        write(process.stderr, res.stderr ? `${res.stderr}\n` : '', () => {
          write(process.stdout, `${JSON.stringify(res.json, null, opts.pretty ? 2 : 0)}\n`, () => {});
        });
      }
    }
  } catch (err) {
    process.exitCode = err instanceof UsageError ? 1 : 2;
    write(process.stderr, `${err.message}\n`, () => {});
  }
}

main();
