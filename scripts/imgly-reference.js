// imgly-reference.js writes the mask @imgly/background-removal-node makes of each
// photo: the alpha channel of removeBackground(..., {output: {format: 'image/x-rgba8'}})
// (its segmentForeground PNG is palette-quantised), as an 8-bit PGM file.
// Usage: node imgly-reference.js IN OUT [IN OUT ...] (scripts/imgly-reference.sh runs it).
//
// The library throws on grey images (its decoder hands one channel to code that reads
// four), so a grey photo is given as an RGB copy made by sharp, which converts an
// embedded profile to sRGB as the library's own decoder does for colour photos.
'use strict';
const fs = require('fs');
const sharp = require('sharp');
const { removeBackground } = require('@imgly/background-removal-node');

async function mask(file) {
  let buf = fs.readFileSync(file);
  const meta = await sharp(buf).metadata();
  if (meta.channels < 3) {
    buf = await sharp(buf).toColourspace('srgb').png().toBuffer();
  }
  const type = meta.format === 'jpeg' ? 'image/jpeg' : 'image/' + meta.format;
  const out = await removeBackground(new Blob([buf], { type }), {
    model: 'small',
    output: { format: 'image/x-rgba8' },
  });
  const m = /width=(\d+);height=(\d+)/.exec(out.type);
  const [w, h] = [Number(m[1]), Number(m[2])];
  const rgba = new Uint8Array(await out.arrayBuffer());
  const alpha = Buffer.alloc(w * h);
  for (let i = 0; i < alpha.length; i++) alpha[i] = rgba[4 * i + 3];
  return { w, h, alpha };
}

(async () => {
  const args = process.argv.slice(2);
  if (args.length === 0 || args.length % 2) throw new Error('usage: imgly-reference.js IN OUT [IN OUT ...]');
  for (let i = 0; i < args.length; i += 2) {
    const { w, h, alpha } = await mask(args[i]);
    fs.writeFileSync(args[i + 1] + '.part', Buffer.concat([Buffer.from(`P5\n${w} ${h}\n255\n`), alpha]));
    fs.renameSync(args[i + 1] + '.part', args[i + 1]);
    console.error(`imgly-reference: ${args[i]}: ${w}x${h}`);
  }
})().catch((e) => {
  console.error('imgly-reference:', e);
  process.exit(1);
});
