// Writes ClipWeights as a Hugging Face CLIPModel folder — config.json,
// model.safetensors, preprocessor_config.json — the layout users download
// and checkpoint.ts loads: q/k/v split out of OpenAI's packed in_proj, the
// projections stored as nn.Linear [out, in]. F32 by default; F16 halves the
// size (the loader reads either).

import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { float32ToHalfBits, writeSafetensors, type WritableTensor } from '../io/safetensors.js';
import { transposed } from '../clip/layers.js';
import { tensor, type ClipWeights } from '../clip/weights.js';

/** The Hugging Face CLIPModel tensors of a ViT CLIP, as float32. */
export function huggingFaceTensors(weights: ClipWeights): Map<string, { shape: number[]; data: Float32Array }> {
  const { config } = weights;
  if (config.vision.kind !== 'vit') throw new Error('writing a Hugging Face CLIPModel needs a ViT image tower (CLIPModel has no ResNet)');
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  const put = (name: string, shape: number[], data: Float32Array): void => void out.set(name, { shape, data });
  const copy = (hf: string, openai: string): void => {
    const t = tensor(weights, openai);
    put(hf, [...t.shape], t.data);
  };
  const copyTransposed = (hf: string, openai: string): void => {
    const t = tensor(weights, openai);
    put(hf, [t.shape[1], t.shape[0]], transposed(t));
  };
  copy('text_model.embeddings.token_embedding.weight', 'token_embedding.weight');
  copy('text_model.embeddings.position_embedding.weight', 'positional_embedding');
  copy('text_model.final_layer_norm.weight', 'ln_final.weight');
  copy('text_model.final_layer_norm.bias', 'ln_final.bias');
  copyTransposed('text_projection.weight', 'text_projection');
  put('logit_scale', [], tensor(weights, 'logit_scale').data);
  copy('vision_model.embeddings.class_embedding', 'visual.class_embedding');
  copy('vision_model.embeddings.patch_embedding.weight', 'visual.conv1.weight');
  copy('vision_model.embeddings.position_embedding.weight', 'visual.positional_embedding');
  copy('vision_model.pre_layrnorm.weight', 'visual.ln_pre.weight'); // sic: Hugging Face's spelling
  copy('vision_model.pre_layrnorm.bias', 'visual.ln_pre.bias');
  copy('vision_model.post_layernorm.weight', 'visual.ln_post.weight');
  copy('vision_model.post_layernorm.bias', 'visual.ln_post.bias');
  copyTransposed('visual_projection.weight', 'visual.proj');

  const blocks = [
    { openai: 'transformer', hf: 'text_model', width: config.text.width, layers: config.text.layers },
    { openai: 'visual.transformer', hf: 'vision_model', width: config.vision.width, layers: config.vision.layers },
  ];
  for (const { openai, hf, width: W, layers } of blocks) {
    for (let l = 0; l < layers; l++) {
      const a = `${openai}.resblocks.${l}.`;
      const b = `${hf}.encoder.layers.${l}.`;
      const inW = tensor(weights, `${a}attn.in_proj_weight`, [3 * W, W]).data;
      const inB = tensor(weights, `${a}attn.in_proj_bias`, [3 * W]).data;
      ['q', 'k', 'v'].forEach((p, i) => {
        put(`${b}self_attn.${p}_proj.weight`, [W, W], inW.slice(i * W * W, (i + 1) * W * W));
        put(`${b}self_attn.${p}_proj.bias`, [W], inB.slice(i * W, (i + 1) * W));
      });
      copy(`${b}self_attn.out_proj.weight`, `${a}attn.out_proj.weight`);
      copy(`${b}self_attn.out_proj.bias`, `${a}attn.out_proj.bias`);
      copy(`${b}layer_norm1.weight`, `${a}ln_1.weight`);
      copy(`${b}layer_norm1.bias`, `${a}ln_1.bias`);
      copy(`${b}layer_norm2.weight`, `${a}ln_2.weight`);
      copy(`${b}layer_norm2.bias`, `${a}ln_2.bias`);
      copy(`${b}mlp.fc1.weight`, `${a}mlp.c_fc.weight`);
      copy(`${b}mlp.fc1.bias`, `${a}mlp.c_fc.bias`);
      copy(`${b}mlp.fc2.weight`, `${a}mlp.c_proj.weight`);
      copy(`${b}mlp.fc2.bias`, `${a}mlp.c_proj.bias`);
    }
  }
  return out;
}

export interface HuggingFaceWriteOptions {
  readonly dtype?: 'F32' | 'F16';
  /** Ids the text config names (Hugging Face pools the text at the first eos_token_id). */
  readonly startToken: number;
  readonly endToken: number;
  /** Extra string metadata for the safetensors header. */
  readonly metadata?: Readonly<Record<string, string>>;
}

/** Writes config.json, model.safetensors and preprocessor_config.json into `dir`. */
export async function writeHuggingFaceClip(dir: string, weights: ClipWeights, options: HuggingFaceWriteOptions): Promise<void> {
  const { config, preprocess } = weights;
  if (config.vision.kind !== 'vit') throw new Error('writing a Hugging Face CLIPModel needs a ViT image tower');
  await mkdir(dir, { recursive: true });
  const dtype = options.dtype ?? 'F32';
  const tensors = new Map<string, WritableTensor>();
  for (const [name, t] of huggingFaceTensors(weights)) {
    tensors.set(name, dtype === 'F16' ? { shape: t.shape, data: float32ToHalfBits(t.data), dtype: 'F16' } : { shape: t.shape, data: t.data });
  }
  await writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt', ...options.metadata });

  const { text, vision, embedDim, layerNormEps } = config;
  const hfConfig = {
    architectures: ['CLIPModel'],
    model_type: 'clip',
    projection_dim: embedDim,
    logit_scale_init_value: 2.6592,
    torch_dtype: dtype === 'F16' ? 'float16' : 'float32',
    text_config: {
      model_type: 'clip_text_model',
      hidden_size: text.width,
      intermediate_size: 4 * text.width,
      num_attention_heads: text.heads,
      num_hidden_layers: text.layers,
      max_position_embeddings: text.contextLength,
      vocab_size: text.vocabSize,
      hidden_act: 'quick_gelu',
      layer_norm_eps: layerNormEps,
      projection_dim: embedDim,
      bos_token_id: options.startToken,
      eos_token_id: options.endToken,
      pad_token_id: options.endToken,
    },
    vision_config: {
      model_type: 'clip_vision_model',
      hidden_size: vision.width,
      intermediate_size: 4 * vision.width,
      num_attention_heads: vision.heads,
      num_hidden_layers: vision.layers,
      image_size: vision.imageSize,
      patch_size: vision.patchSize,
      num_channels: 3,
      hidden_act: 'quick_gelu',
      layer_norm_eps: layerNormEps,
      projection_dim: embedDim,
    },
  };
  await writeFileAtomic(path.join(dir, 'config.json'), `${JSON.stringify(hfConfig, null, 2)}\n`);
  const preprocessor = {
    image_processor_type: 'CLIPImageProcessor',
    do_resize: true,
    size: { shortest_edge: preprocess.resizeShortestEdge },
    resample: 3,
    do_center_crop: true,
    crop_size: { height: preprocess.cropSize, width: preprocess.cropSize },
    do_rescale: true,
    rescale_factor: 1 / 255,
    do_normalize: true,
    image_mean: preprocess.mean,
    image_std: preprocess.std,
    do_convert_rgb: true,
  };
  await writeFileAtomic(path.join(dir, 'preprocessor_config.json'), `${JSON.stringify(preprocessor, null, 2)}\n`);
}
