#include "replay/model.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace ems::bench {
namespace {

// Shapes from each model's config.json on Hugging Face (docs/replay.md cites them).
const std::vector<ModelPreset>& Presets() {
  static const auto* presets = new std::vector<ModelPreset>{
      {"llama3-8b", 32, 4096, 8, 128, 8.03e9, 1},
      {"llama3-70b", 80, 8192, 8, 128, 70.6e9, 4},
      {"qwen2-7b", 28, 3584, 4, 128, 7.62e9, 1},
  };
  return *presets;
}

}  // namespace

std::vector<std::string> ModelNames() {
  std::vector<std::string> out;
  for (const ModelPreset& m : Presets()) out.push_back(m.name);
  return out;
}

absl::StatusOr<ModelPreset> FindModel(const std::string& name) {
  for (const ModelPreset& m : Presets()) {
    if (m.name == name) return m;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown --model '", name, "'; known: ", absl::StrJoin(ModelNames(), ", ")));
}

absl::StatusOr<double> FindGpuTflops(const std::string& name) {
  // NVIDIA datasheets, dense BF16 tensor-core peak (the sparsity figures are twice these).
  if (name == "h100") return 989.0;
  if (name == "a100") return 312.0;
  return absl::InvalidArgumentError(absl::StrCat("unknown --gpu '", name, "'; known: h100, a100"));
}

double PrefillModel::Seconds(int64_t new_tokens, int64_t cached_tokens) const {
  const double n = static_cast<double>(new_tokens);
  const double c = static_cast<double>(cached_tokens);
  return seconds_per_token * n + seconds_per_pair * (n * c + n * (n + 1) / 2);
}

PrefillModel PrefillModel::FromFlops(const ModelPreset& model, double gpu_tflops, double mfu) {
  const double flops_per_s = model.gpus * gpu_tflops * 1e12 * mfu;
  PrefillModel p;
  p.seconds_per_token = 2 * model.params / flops_per_s;
  p.seconds_per_pair = 4.0 * model.layers * model.hidden / flops_per_s;
  return p;
}

int64_t TtftModel::HitTokens(int64_t hit_blocks, int64_t input_tokens) const {
  return std::min<int64_t>(hit_blocks * block_tokens, input_tokens);
}

double TtftModel::TransferSeconds(int64_t hit_tokens, double gbps) const {
  if (hit_tokens == 0 || gbps <= 0) return 0;
  return static_cast<double>(hit_tokens) * kv_bytes_per_token / (gbps * 1e9);
}

double TtftModel::Seconds(double lookup_seconds, int64_t hit_blocks, int64_t input_tokens,
                          double gbps) const {
  const int64_t hit = std::min(HitTokens(hit_blocks, input_tokens), input_tokens - 1);
  const int64_t cached = std::max<int64_t>(hit, 0);
  const int64_t missed = std::max<int64_t>(input_tokens - cached, 1);
  return lookup_seconds + TransferSeconds(cached, gbps) + prefill.Seconds(missed, cached);
}

}  // namespace ems::bench
