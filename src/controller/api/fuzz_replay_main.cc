// Runs the fuzz target without libFuzzer (compilers other than clang): every file given on the
// command line, then deterministic mutations of each (byte flips, truncations, insertions of
// JSON punctuation), so the CTest run still explores beyond the seeds under ASan/UBSan.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  std::vector<std::string> seeds;
  int mutations = 2000;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("-runs=", 0) == 0) {
      mutations = std::atoi(arg.c_str() + 6);
      continue;
    }
    if (arg[0] == '-') continue;  // libFuzzer flags mean nothing here
    std::vector<std::filesystem::path> files;
    if (std::filesystem::is_directory(arg)) {
      for (const auto& e : std::filesystem::directory_iterator(arg)) files.push_back(e.path());
    } else {
      files.push_back(arg);
    }
    for (const auto& f : files) {
      std::ifstream in(f, std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      seeds.push_back(ss.str());
    }
  }
  std::mt19937_64 rng(20261122);
  static const char kPunct[] = "{}[]\":,-0123456789.eE\\u\xff";
  size_t runs = 0;
  for (const std::string& seed : seeds) {
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(seed.data()), seed.size());
    ++runs;
    for (int m = 0; m < mutations; ++m) {
      std::string s = seed;
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits && !s.empty(); ++e) {
        const size_t pos = rng() % s.size();
        switch (rng() % 4) {
          case 0:
            s[pos] = static_cast<char>(rng());
            break;
          case 1:
            s.resize(pos);
            break;
          case 2:
            s.insert(pos, 1, kPunct[rng() % (sizeof(kPunct) - 1)]);
            break;
          case 3:
            s.insert(pos, s.substr(pos, rng() % 16));
            break;
        }
      }
      if (s.empty()) s = seed.substr(0, 1);
      s[0] = seed.empty() ? 0 : seed[0];  // keep the parser the seed chose, mostly
      if (m % 7 == 0) s[0] = static_cast<char>(rng());
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size());
      ++runs;
    }
  }
  std::printf("replayed %zu inputs from %zu seeds\n", runs, seeds.size());
  return seeds.empty() ? 1 : 0;
}
