// Decoding a Job (the body of create and get) from arbitrary bytes; see check_decoding for what must
// hold.
#include "fuzz_support.hpp"

#include <perplexity/json.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view body(reinterpret_cast<const char*>(data), size);
    perplexity_fuzz::check_decoding(body, [](std::string_view text) { return perplexity::parse_job(text); });
    return 0;
}
