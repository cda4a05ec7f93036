// A main() for the fuzz targets when there is no libFuzzer (the normal g++ build, CTest label
// "fuzz"). It runs every file given (or found in the directories given: the seed corpus), then
// --runs=N deterministic pseudo-random mutations of them: bit flips, byte changes, inserts,
// deletes, copies, tokens taken from the corpus, and splices of two entries. The seed is fixed,
// so a run is the same on every machine. No coverage feedback: it is a smoke test of what
// `make fuzz` does for long with libFuzzer.
//
// A finding is a crash (a trap of a target's invariant, a signal, an abort): the process dies,
// so the test fails. The input that killed it is written first to <target>-crash-run-<N> (or
// -crash-<corpus file>) in the working directory; run the target with that file alone to
// reproduce it.
//
//   control_request_fuzz [--runs=N] [--max_len=N] [--seed=N] DIR_OR_FILE...
//
// Given files only (no directory), it runs just them unless --runs says otherwise.
#include <signal.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <string_view>
#include <vector>
#include "splitmix.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

using Bytes = std::vector<uint8_t>;

// The input being run, for the fatal-signal handler (which may only make async-signal-safe
// calls: it writes what is here, as it is).
const uint8_t* current_data = nullptr;
size_t current_size = 0;
char crash_path[256] = "fuzz-crash";

using Random = steer::testing::SplitMix;

void on_fatal_signal(int signal_number) {
  // Async-signal-safe only: open, write, close, and the default action again.
  int fd = ::open(crash_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd >= 0) {
    size_t done = 0;
    while (done < current_size) {
      ssize_t n = ::write(fd, current_data + done, current_size - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    ::close(fd);
  }
  static const char kPrefix[] = "\nfuzz: finding: the input that crashed is in ";
  ssize_t ignored = ::write(STDERR_FILENO, kPrefix, sizeof(kPrefix) - 1);
  ignored = ::write(STDERR_FILENO, crash_path, std::strlen(crash_path));
  ignored = ::write(STDERR_FILENO, "\n", 1);
  (void)ignored;
  ::signal(signal_number, SIG_DFL);
  ::raise(signal_number);
}

void install_crash_handler() {
  // Its own stack, so that a stack overflow is reported too.
  static std::vector<char> alternate(1 << 16);
  stack_t stack{};
  stack.ss_sp = alternate.data();
  stack.ss_size = alternate.size();
  ::sigaltstack(&stack, nullptr);
  struct sigaction action{};
  action.sa_handler = on_fatal_signal;
  action.sa_flags = SA_ONSTACK | SA_RESETHAND;
  for (int signal_number : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP})
    ::sigaction(signal_number, &action, nullptr);
}

// Runs one input from a buffer of exactly its size (so that a sanitizer build sees any read
// past its end).
void run_one(const Bytes& input) {
  auto* copy = new uint8_t[input.size() + (input.empty() ? 1 : 0)];
  std::copy(input.begin(), input.end(), copy);
  current_data = copy;
  current_size = input.size();
  LLVMFuzzerTestOneInput(copy, input.size());
  current_data = nullptr;
  current_size = 0;
  delete[] copy;
}

Bytes read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// What the mutator takes as one token: words, numbers, addresses, paths.
bool word_byte(uint8_t c) {
  return std::isalnum(c) || c == '_' || c == '.' || c == '-' || c == '/' || c == ':';
}

// The words (runs of word_byte) and double-quoted strings of the corpus, and edge values:
// what the mutator inserts, so that keys and values the parsers know get moved around.
std::vector<Bytes> tokens_of(const std::vector<Bytes>& corpus) {
  std::set<Bytes> found;
  for (const auto& entry : corpus) {
    for (size_t at = 0; at < entry.size();) {
      size_t end = at;
      if (entry[at] == '"') {
        end = at + 1;
        while (end < entry.size() && entry[end] != '"' && entry[end] != '\n') ++end;
        if (end < entry.size() && entry[end] == '"') ++end;
      } else {
        while (end < entry.size() && word_byte(entry[end])) ++end;
      }
      if (end == at) end = at + 1;
      if (end - at >= 2 && end - at <= 64) found.insert(Bytes(entry.begin() + at, entry.begin() + end));
      at = end;
    }
  }
  // What edges of number and string parsers are made of, whatever the format.
  for (const char* extra : {"0", "-1", "1", "255", "256", "65535", "65536", "2147483647",
                            "2147483648", "4294967295", "4294967296", "18446744073709551615",
                            "18446744073709551616", "-9223372036854775808", "1e400", "1.5",
                            "-0", "0x10", "0o17", "nan", "inf", "true", "false", "null", "\"\"",
                            "[]", "{}", "[[", "]]", "\\u0000", "\\u202e", "\\ud800",
                            "\\U0010FFFF", "\"\"\"", "'''", "\xc0\x80", "\xed\xa0\x80",
                            "\xe2\x80\xae", "\xff", "::ffff:", "/0", "/33", "/129", "1979-05-27"})
    found.insert(Bytes(extra, extra + std::strlen(extra)));
  return {found.begin(), found.end()};
}

// The token (a word, or a string in double quotes) at `at`: [first, last).
std::pair<size_t, size_t> token_at(const Bytes& data, size_t at) {
  size_t first = at, last = at + 1;
  if (word_byte(data[at])) {
    while (first > 0 && word_byte(data[first - 1])) --first;
    while (last < data.size() && word_byte(data[last])) ++last;
  } else if (data[at] == '"') {
    while (last < data.size() && data[last] != '"' && data[last] != '\n') ++last;
    if (last < data.size() && data[last] == '"') ++last;
  }
  return {first, last};
}

class Mutator {
 public:
  Mutator(uint64_t seed, std::vector<Bytes> tokens, size_t max_len)
      : random_(seed), tokens_(std::move(tokens)), max_len_(max_len) {}

  // One to four steps (one half of the time, two a quarter...): most mutants stay close to
  // the corpus, so that they get past the syntax into the checks behind it.
  Bytes mutate(const std::vector<Bytes>& corpus) {
    Bytes data = corpus.empty() ? Bytes{} : corpus[random_.below(corpus.size())];
    size_t steps = 1;
    while (steps < 4 && random_.one_in(2)) ++steps;
    for (size_t i = 0; i < steps; ++i) step(data, corpus);
    if (data.size() > max_len_) data.resize(max_len_);
    return data;
  }

 private:
  static constexpr uint8_t kInteresting[] = {' ', '\n', '\t', '\r', '{', '}', '[', ']', '"',
                                             '\'', ':', ',', '=', '.', '#', '-', '/', '\\',
                                             '0', '1', '9', 0x00, 0x7f, 0x80, 0xc0, 0xff};

  const Bytes& token() { return tokens_[random_.below(tokens_.size())]; }
  uint8_t interesting() { return kInteresting[random_.below(sizeof(kInteresting))]; }

  void step(Bytes& data, const std::vector<Bytes>& corpus) {
    size_t at = random_.below(data.size() + 1);  // an insertion point
    switch (random_.below(16)) {
      case 0:  // flip a bit
        if (!data.empty()) data[random_.below(data.size())] ^= uint8_t(1u << random_.below(8));
        break;
      case 1:  // a random byte
        if (!data.empty()) data[random_.below(data.size())] = uint8_t(random_.next());
        break;
      case 2:  // a byte parsers care about
        if (!data.empty()) data[random_.below(data.size())] = interesting();
        break;
      case 3: {  // insert a few bytes
        size_t count = 1 + random_.below(4);
        for (size_t i = 0; i < count; ++i)
          data.insert(data.begin() + at, random_.one_in(2) ? interesting() : uint8_t(random_.next()));
        break;
      }
      case 4: {  // delete a range
        if (data.empty()) break;
        size_t from = random_.below(data.size());
        size_t count = 1 + random_.below(std::min<size_t>(16, data.size() - from));
        data.erase(data.begin() + from, data.begin() + from + count);
        break;
      }
      case 5: {  // copy a range elsewhere
        if (data.empty()) break;
        size_t from = random_.below(data.size());
        size_t count = 1 + random_.below(std::min<size_t>(64, data.size() - from));
        Bytes piece(data.begin() + from, data.begin() + from + count);
        data.insert(data.begin() + random_.below(data.size() + 1), piece.begin(), piece.end());
        break;
      }
      case 6: {  // insert a token
        const Bytes& word = token();
        data.insert(data.begin() + at, word.begin(), word.end());
        break;
      }
      case 7: {  // splice: this entry up to a point, another from a point on
        if (corpus.empty()) break;
        const Bytes& other = corpus[random_.below(corpus.size())];
        size_t from = random_.below(other.size() + 1);
        data.resize(at);
        data.insert(data.end(), other.begin() + from, other.end());
        break;
      }
      case 8: {  // swap two tokens
        if (data.empty()) break;
        auto a = token_at(data, random_.below(data.size()));
        auto b = token_at(data, random_.below(data.size()));
        if (a.first > b.first) std::swap(a, b);
        if (a.second > b.first) break;  // the same token, or overlapping
        Bytes first(data.begin() + a.first, data.begin() + a.second);
        Bytes second(data.begin() + b.first, data.begin() + b.second);
        data.erase(data.begin() + b.first, data.begin() + b.second);
        data.insert(data.begin() + b.first, first.begin(), first.end());
        data.erase(data.begin() + a.first, data.begin() + a.second);
        data.insert(data.begin() + a.first, second.begin(), second.end());
        break;
      }
      default: {  // replace a token (a word, a number, a string) with one from the dictionary
        if (data.empty()) break;
        auto [first, last] = token_at(data, random_.below(data.size()));
        // Mostly a string by a string and a word by a word: the syntax around stays valid.
        const Bytes* word = &token();
        for (int tries = 0; tries < 8 && !random_.one_in(4); ++tries) {
          if ((data[first] == '"') == (!word->empty() && (*word)[0] == '"')) break;
          word = &token();
        }
        data.erase(data.begin() + first, data.begin() + last);
        data.insert(data.begin() + first, word->begin(), word->end());
        break;
      }
    }
  }

  Random random_;
  std::vector<Bytes> tokens_;
  size_t max_len_;
};

bool option(std::string_view arg, std::string_view name, uint64_t& value) {
  if (arg.substr(0, name.size()) != name) return false;
  value = std::strtoull(std::string(arg.substr(name.size())).c_str(), nullptr, 10);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string target = std::filesystem::path(argv[0]).filename().string();
  uint64_t runs = 20000, max_len = 4096, seed = 0x5eed;
  bool runs_given = false, directory_given = false;
  std::vector<std::filesystem::path> files;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (option(arg, "--runs=", runs)) {
      runs_given = true;
      continue;
    }
    if (option(arg, "--max_len=", max_len) || option(arg, "--seed=", seed)) continue;
    if (arg.substr(0, 1) == "-") {
      std::fprintf(stderr, "%s: unknown option %s\nusage: %s [--runs=N] [--max_len=N] "
                   "[--seed=N] CORPUS_DIR_OR_FILE...\n", target.c_str(), argv[i], target.c_str());
      return 2;
    }
    std::error_code error;
    if (std::filesystem::is_directory(arg, error)) {
      directory_given = true;
      std::vector<std::filesystem::path> entries;
      for (const auto& entry : std::filesystem::directory_iterator(arg))
        if (entry.is_regular_file()) entries.push_back(entry.path());
      std::sort(entries.begin(), entries.end());  // the same order everywhere
      files.insert(files.end(), entries.begin(), entries.end());
    } else if (std::filesystem::is_regular_file(arg, error)) {
      files.emplace_back(arg);
    } else {
      std::fprintf(stderr, "%s: %s is neither a file nor a directory\n", target.c_str(), argv[i]);
      return 2;
    }
  }

  // Files alone (no directory) are inputs to reproduce: run just them, as libFuzzer does.
  if (!directory_given && !runs_given) runs = 0;
  install_crash_handler();
  uint64_t executions = 0;
  std::vector<Bytes> corpus;
  for (const auto& path : files) {
    std::snprintf(crash_path, sizeof(crash_path), "%s-crash-%s", target.c_str(),
                  path.filename().c_str());
    corpus.push_back(read_file(path));
    run_one(corpus.back());
    ++executions;
  }

  // Every mutant is made from a corpus entry (mutants of mutants drift away from anything the
  // parsers accept: without coverage feedback, few would get past the syntax).
  Mutator mutator(seed, tokens_of(corpus), max_len);
  for (uint64_t run = 0; run < runs; ++run) {
    Bytes input = mutator.mutate(corpus);
    std::snprintf(crash_path, sizeof(crash_path), "%s-crash-run-%llu", target.c_str(),
                  static_cast<unsigned long long>(run));
    run_one(input);
    ++executions;
  }
  std::printf("%s: %llu executions, 0 findings\n", target.c_str(),
              static_cast<unsigned long long>(executions));
  return 0;
}
