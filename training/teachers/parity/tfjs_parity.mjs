// Runs a teacher network in its original runtime (TensorFlow.js, CPU backend) on fixed inputs and prints JSON.
//
//   NODE_PATH=<dir with @tensorflow/tfjs> node tfjs_parity.mjs <faceapi|human> <package dir> <inputs.u8> N S
//
// <inputs.u8> holds N RGB images S x S, uint8, channels last (N, S, S, 3). The Python side
// (`python -m training.teachers.parity`) writes it, runs this script and compares the output with the torch module.
//
// faceapi: the model is loaded and run by face-api's own code (dist/face-api.node-wasm.js: loadFromDisk,
//   toNetInput, FaceExpressionNet.runNet, FaceFeatureExtractor.forwardInput), fed 0-255 float tensors as face-api
//   reads images. Output: logits (before face-api's softmax), probabilities, the pooled 256-d feature.
// human: Human's emotion model is a tfjs graph model; it is loaded with tf.loadGraphModel and fed exactly what
//   @vladmandic/human's src/gear/emotion.ts feeds it (the face in [0, 1], resizeBilinear to 64, grey with
//   weights 0.2989/0.5870/0.1140, (grey - 0.5) * 2). Output: the graph's softmax and the tensor before it.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const [kind, packageDir, inputsPath, nArg, sArg] = process.argv.slice(2);
const n = Number(nArg);
const s = Number(sArg);
const nodePath = (process.env.NODE_PATH || '').split(path.delimiter).filter(Boolean)[0];
if (!kind || !packageDir || !inputsPath || !n || !s || !nodePath) {
  console.error('usage: NODE_PATH=<node_modules> node tfjs_parity.mjs <faceapi|human> <package dir> <inputs.u8> N S');
  process.exit(2);
}
const require = createRequire(path.join(nodePath, 'noop.js'));
const bytes = fs.readFileSync(inputsPath);
if (bytes.length !== n * s * s * 3) throw new Error(`expected ${n * s * s * 3} bytes in ${inputsPath}, got ${bytes.length}`);

async function runFaceApi() {
  const faceapi = require(path.join(packageDir, 'dist', 'face-api.node-wasm.js'));
  const { tf } = faceapi;
  await tf.setBackend('cpu');
  await tf.ready();
  await faceapi.nets.faceExpressionNet.loadFromDisk(path.join(packageDir, 'model'));
  const images = [];
  for (let i = 0; i < n; i += 1) {
    const pixels = Float32Array.from(bytes.subarray(i * s * s * 3, (i + 1) * s * s * 3));
    images.push(tf.tensor3d(pixels, [s, s, 3], 'float32'));
  }
  const input = await faceapi.toNetInput(images);
  const logits = faceapi.nets.faceExpressionNet.runNet(input);
  const probs = tf.softmax(logits);
  const features = faceapi.nets.faceExpressionNet.faceFeatureExtractor.forwardInput(input);
  return {
    runtime: { tfjs: tf.version_core, backend: tf.getBackend(), loader: 'face-api dist/face-api.node-wasm.js' },
    logits: await logits.array(),
    probs: await probs.array(),
    features: (await features.reshape([n, -1]).array()),
  };
}

async function runHuman() {
  const tf = require('@tensorflow/tfjs');
  await tf.setBackend('cpu');
  await tf.ready();
  const modelPath = path.join(packageDir, 'models', 'emotion.json');
  const json = JSON.parse(fs.readFileSync(modelPath, 'utf8'));
  const weightSpecs = json.weightsManifest.flatMap((group) => group.weights);
  const shards = json.weightsManifest.flatMap((group) => group.paths.map((p) => fs.readFileSync(path.join(path.dirname(modelPath), p))));
  const all = Buffer.concat(shards);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  const handler = { load: async () => ({ ...json, weightsManifest: undefined, weightSpecs, weightData }) };
  const model = await tf.loadGraphModel(handler);
  const inputSize = model.inputs[0].shape[2];
  const image = tf.div(tf.tensor4d(Float32Array.from(bytes), [n, s, s, 3], 'float32'), 255);
  // As src/gear/emotion.ts (config.face.emotion.crop unset): resize, grey, normalise.
  const resize = tf.image.resizeBilinear(image, [inputSize, inputSize], false);
  const channels = tf.mul(resize, tf.tensor1d([0.2989, 0.5870, 0.1140], 'float32'));
  const grayscale = tf.sum(channels, 3, true);
  const normalized = tf.mul(tf.sub(grayscale, tf.scalar(0.5)), tf.scalar(2.0));
  const probs = model.execute(normalized);
  const logits = model.execute(normalized, 'StatefulPartitionedCall/model_1/global_average_pooling2d_1/Mean');
  return {
    runtime: { tfjs: tf.version_core, backend: tf.getBackend(), loader: 'tf.loadGraphModel(models/emotion.json)' },
    input_shape: model.inputs[0].shape,
    logits: await logits.array(),
    probs: await probs.array(),
  };
}

const result = kind === 'faceapi' ? await runFaceApi() : kind === 'human' ? await runHuman() : null;
if (!result) throw new Error(`unknown model ${kind}; use faceapi or human`);
process.stdout.write(`${JSON.stringify(result)}\n`);
