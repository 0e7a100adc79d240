/**
 * A program (for `node -e` in a sandbox) that fills /workspace with 100 MiB
 * of mixed files: 1,000 source files of text, 40 MiB of random bytes, 10 MiB
 * of zeros and a 50 MiB sparse file. It prints `filled`.
 */
export const FILL = `
const fs = require('fs'), crypto = require('crypto');
fs.mkdirSync('/workspace/src', { recursive: true });
for (let i = 0; i < 1000; i++) fs.writeFileSync('/workspace/src/f' + i + '.js', ('// file ' + i + '\\nexport const v' + i + ' = ' + i + ';\\n').repeat(80));
fs.writeFileSync('/workspace/random.bin', crypto.randomBytes(40 << 20));
fs.writeFileSync('/workspace/zeros.bin', Buffer.alloc(10 << 20));
const fd = fs.openSync('/workspace/sparse.bin', 'w'); fs.ftruncateSync(fd, 50 << 20); fs.closeSync(fd);
console.log('filled');`;
