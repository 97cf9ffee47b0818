// Decoding an Agent API Response (the body of create_response and get_response) from arbitrary bytes;
// see check_decoding for what must hold. On top of that, what a caller reads off a response (its id,
// status, answer, function calls and sources, and the kind of every output item) must come back the
// same from the library's own encoding, exactly: none of it is a double that may drift on reparse.
#include "fuzz_support.hpp"

#include <perplexity/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {

void check_reread(const perplexity::Response& first) {
    namespace px = perplexity;
    using perplexity_fuzz::check;
    const std::string encoded = px::to_json_string(first);
    const auto again = px::parse_response(encoded);
    check(again.has_value(), "what the library encodes, it decodes", encoded);
    check(again->id == first.id, "the id survives a round trip", encoded);
    check(again->status == first.status, "the status survives a round trip", encoded);
    check(first.status_text.empty() || again->status_text == first.status_text,
          "a status sent as text is written back as it came", encoded);
    check(again->created_at == first.created_at && again->model == first.model,
          "created_at and model survive a round trip", encoded);
    check(again->output.size() == first.output.size(), "no output item is lost or added", encoded);
    for (std::size_t i = 0; i < first.output.size(); ++i) {
        check(again->output[i].index() == first.output[i].index() &&
                  px::output_type(again->output[i]) == px::output_type(first.output[i]),
              "every output item keeps its kind and type", encoded);
    }
    check(again->output_text() == first.output_text(), "the answer survives a round trip", encoded);
    check(again->function_calls().size() == first.function_calls().size(),
          "the function calls survive a round trip", encoded);
    check(again->search_results().size() == first.search_results().size(),
          "the search results survive a round trip", encoded);
    check(again->error == first.error, "the error survives a round trip", encoded);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view body(reinterpret_cast<const char*>(data), size);
    perplexity_fuzz::check_decoding(body,
                                    [](std::string_view text) { return perplexity::parse_response(text); });
    if (const auto response = perplexity::parse_response(body)) {
        check_reread(*response);
    }
    return 0;
}
