// The command line of the library's bench programs: the flags every contender of bench/run takes
// (--base-url, --ca-file, --api-key) and the counts each program declares, as `--flag value` pairs.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <string_view>

namespace bench {

struct Flags {
    std::string base_url{};
    std::string ca_file{};
    std::string api_key{};
    /// Every count flag the program declared, with its value or its default.
    std::map<std::string, std::size_t, std::less<>> counts{};
    /// Every text flag the program declared, with its value or its default.
    std::map<std::string, std::string, std::less<>> texts{};

    std::size_t count(std::string_view flag) const { return counts.find(flag)->second; }
    const std::string& text(std::string_view flag) const { return texts.find(flag)->second; }
};

[[noreturn]] inline void usage(std::string_view program, std::string_view counts_usage,
                               std::string_view problem) {
    std::cerr << program << ": " << problem << "\nusage: " << program
              << " --base-url URL --ca-file FILE --api-key KEY " << counts_usage << '\n';
    std::exit(2);
}

/// Parses the command line; on a problem prints the usage and exits with 2, as bench/run expects.
inline Flags parse_flags(int argc, char** argv, std::string_view program, std::string_view counts_usage,
                         std::map<std::string, std::size_t, std::less<>> counts,
                         std::map<std::string, std::string, std::less<>> texts = {}) {
    Flags flags{.counts = std::move(counts), .texts = std::move(texts)};
    for (int i = 1; i < argc; ++i) {
        const std::string_view flag = argv[i];
        if (i + 1 >= argc) {
            usage(program, counts_usage, "every flag takes a value");
        }
        const std::string value = argv[++i];
        if (flag == "--base-url") {
            flags.base_url = value;
        } else if (flag == "--ca-file") {
            flags.ca_file = value;
        } else if (flag == "--api-key") {
            flags.api_key = value;
        } else if (auto counted = flags.counts.find(flag); counted != flags.counts.end()) {
            char* end = nullptr;
            const unsigned long long parsed = std::strtoull(value.c_str(), &end, 10);
            if (end == value.c_str() || *end != '\0' || parsed == 0) {
                usage(program, counts_usage, "a count must be a positive integer");
            }
            counted->second = static_cast<std::size_t>(parsed);
        } else if (auto named = flags.texts.find(flag); named != flags.texts.end()) {
            named->second = value;
        } else {
            usage(program, counts_usage, "unknown flag");
        }
    }
    if (flags.base_url.empty() || flags.api_key.empty()) {
        usage(program, counts_usage, "--base-url and --api-key are required");
    }
    return flags;
}

}  // namespace bench
