// Model presets (KV bytes per token, compute per token) and the TTFT model of the replay
// harness. Sources of every figure are in docs/replay.md ("Model presets").
#ifndef EMS_BENCH_REPLAY_MODEL_H_
#define EMS_BENCH_REPLAY_MODEL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ems::bench {

// A transformer's shape, from its published config.json. KV bytes per token are
// layers × kv_heads × head_dim × 2 (K and V) × 2 bytes (bf16).
struct ModelPreset {
  std::string name;
  int layers = 0;
  int hidden = 0;  // d_model = attention heads × head_dim
  int kv_heads = 0;
  int head_dim = 0;
  double params = 0;  // parameter count
  int gpus = 1;       // GPUs per prefill instance (tensor parallel)

  uint64_t KvBytesPerToken() const {
    return static_cast<uint64_t>(layers) * kv_heads * head_dim * 2 * 2;
  }
};

// llama3-8b, llama3-70b or qwen2-7b; INVALID_ARGUMENT naming the known ones otherwise.
absl::StatusOr<ModelPreset> FindModel(const std::string& name);
std::vector<std::string> ModelNames();

// Dense BF16 peak of one GPU in TFLOPS: h100 (989), a100 (312); INVALID_ARGUMENT otherwise.
absl::StatusOr<double> FindGpuTflops(const std::string& name);

// Prefill time of `new_tokens` tokens on top of `cached_tokens` already in the KV cache:
//   seconds = per_token × new + per_pair × (new × cached + new × (new + 1) / 2)
// The linear term is the weights' FLOPs (2 × params per token); the quadratic one is
// attention (QKᵀ and AV: 4 × layers × hidden FLOPs per query-key pair, causal).
struct PrefillModel {
  double seconds_per_token = 0;
  double seconds_per_pair = 0;

  double Seconds(int64_t new_tokens, int64_t cached_tokens) const;
  // From a preset, the GPU's dense peak and the model FLOPs utilization reached in prefill.
  static PrefillModel FromFlops(const ModelPreset& model, double gpu_tflops, double mfu);
};

// TTFT of one request = lookup + transfer of the hit KV + prefill of the missed tokens.
// Hit tokens are min(hit_blocks × block_tokens, input_tokens); at least one token is always
// computed (the engine needs the last token's logits even on a full hit).
struct TtftModel {
  PrefillModel prefill;
  uint64_t kv_bytes_per_token = 0;  // full model size, not scaled
  int block_tokens = 512;

  int64_t HitTokens(int64_t hit_blocks, int64_t input_tokens) const;
  // `gbps`: GB/s (1e9 bytes/s) from where the hits live into GPU memory.
  double TransferSeconds(int64_t hit_tokens, double gbps) const;
  double Seconds(double lookup_seconds, int64_t hit_blocks, int64_t input_tokens,
                 double gbps) const;
};

}  // namespace ems::bench

#endif  // EMS_BENCH_REPLAY_MODEL_H_
