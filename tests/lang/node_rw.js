#!/usr/bin/env node
// node_rw.js - write and read keys of a mounted store through Node's fs.
//
//   node node_rw.js write DIR   write the keys below DIR, checking each read-back
//   node node_rw.js check DIR   check the keys that `write` left (e.g. after a remount)
//
// Keys: text.txt (writeFileSync, then a shorter rewrite), log.txt (appendFileSync
// x 100), bin.dat (1 MiB of seeded pseudo-random bytes, then 4 KiB patched at an
// odd offset with fs.writeSync), read back whole with readFileSync and in pieces
// with fs.openSync + fs.readSync at offsets.  Exit status 0 when every byte
// matches, 1 otherwise (with a message naming the key and the offset).
'use strict';
const fs = require('fs');
const path = require('path');

const BIN_SIZE = 1 << 20;
const PATCH_OFF = 123457;
const PATCH_LEN = 4096;

// Deterministic bytes (xorshift32) so `check` knows them without state.
function prng(seed, n) {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

function expectedText() { return 'short text\n'; }
function expectedLog() {
  let s = '';
  for (let i = 0; i < 100; i++) s += `line ${i} of the log\n`;
  return s;
}
function expectedBin() {
  const b = prng(12345, BIN_SIZE);
  prng(777, PATCH_LEN).copy(b, PATCH_OFF);
  return b;
}

function fail(msg) {
  console.error(`node_rw.js: ${msg}`);
  process.exit(1);
}

function sameBytes(key, got, want) {
  if (got.length !== want.length)
    fail(`${key}: ${got.length} bytes, expected ${want.length}`);
  const n = Buffer.compare(got, want);
  if (n !== 0) {
    let i = 0;
    while (got[i] === want[i]) i++;
    fail(`${key}: bytes differ at offset ${i}: ${got[i]} != ${want[i]}`);
  }
}

// Read `len` bytes at `off` with fs.readSync (positional read).
function preadAt(key, fd, off, len) {
  const b = Buffer.alloc(len);
  let done = 0;
  while (done < len) {
    const n = fs.readSync(fd, b, done, len - done, off + done);
    if (n === 0) fail(`${key}: unexpected end of file at ${off + done}`);
    done += n;
  }
  return b;
}

function check(dir) {
  const text = path.join(dir, 'text.txt');
  sameBytes(text, fs.readFileSync(text), Buffer.from(expectedText()));

  const log = path.join(dir, 'log.txt');
  sameBytes(log, fs.readFileSync(log), Buffer.from(expectedLog()));

  const bin = path.join(dir, 'bin.dat');
  const want = expectedBin();
  sameBytes(bin, fs.readFileSync(bin), want);
  if (fs.statSync(bin).size !== BIN_SIZE) fail(`${bin}: wrong size`);
  const fd = fs.openSync(bin, 'r');
  try {
    for (const [off, len] of [[0, 10], [PATCH_OFF - 3, 10], [PATCH_OFF + PATCH_LEN - 5, 10],
                              [BIN_SIZE - 7, 7], [500000, 65536]]) {
      sameBytes(`${bin}@${off}`, preadAt(bin, fd, off, len), want.subarray(off, off + len));
    }
    const b = Buffer.alloc(16);
    if (fs.readSync(fd, b, 0, 16, BIN_SIZE) !== 0) fail(`${bin}: read past the end returned data`);
  } finally {
    fs.closeSync(fd);
  }
  console.log(`checked ${dir}: text.txt, log.txt, bin.dat`);
}

function write(dir) {
  const text = path.join(dir, 'text.txt');
  fs.writeFileSync(text, 'a longer first version of the text\n');
  sameBytes(text, fs.readFileSync(text), Buffer.from('a longer first version of the text\n'));
  fs.writeFileSync(text, expectedText()); // must truncate the longer version

  const log = path.join(dir, 'log.txt');
  for (let i = 0; i < 100; i++) fs.appendFileSync(log, `line ${i} of the log\n`);

  const bin = path.join(dir, 'bin.dat');
  fs.writeFileSync(bin, prng(12345, BIN_SIZE));
  const fd = fs.openSync(bin, 'r+');
  try {
    const patch = prng(777, PATCH_LEN);
    let done = 0;
    while (done < PATCH_LEN)
      done += fs.writeSync(fd, patch, done, PATCH_LEN - done, PATCH_OFF + done);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  check(dir);
}

const [mode, dir] = process.argv.slice(2);
try {
  if (mode === 'write' && dir) write(dir);
  else if (mode === 'check' && dir) check(dir);
  else {
    console.error('usage: node_rw.js write|check DIR');
    process.exit(2);
  }
} catch (e) {
  fail(e.message);
}
