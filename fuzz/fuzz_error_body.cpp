// Reading an error body from arbitrary bytes, alone and as the Client does it for a non-2xx response.
//
// Input layout: one control byte (status, how the key is spelled, whether a job id is known), two
// bytes of splice position, then the body. The key is spliced into the body at that position so the
// fuzzer can place it anywhere: inside a JSON string, an HTML title, across an excerpt's cut.
#include "fuzz_support.hpp"

#include <perplexity/detail/error_body.hpp>
#include <perplexity/detail/response.hpp>
#include <perplexity/error.hpp>
#include <perplexity/job.hpp>

#include <array>
#include <optional>
#include <string>

namespace {

namespace px = perplexity;
using perplexity_fuzz::check;

constexpr std::array<unsigned, 16> statuses = {400, 401, 403, 404, 408, 409, 422, 429,
                                               500, 502, 503, 504, 100, 301, 418, 599};

/// What server text may become: printable, and no longer than an excerpt plus its "...".
void check_server_text(const px::Error& error) {
    const std::string printed = px::to_string(error);
    constexpr std::size_t bound = px::detail::max_server_text + 3;
    for (const std::string* field :
         {&error.api_type, &error.api_message, &error.api_param, &error.body_excerpt}) {
        check(perplexity_fuzz::printable_ascii(*field), "server text in an Error is printable ASCII",
              printed);
        check(field->size() <= bound, "server text in an Error is bounded", printed);
    }
}

/// The key as the server might spell it: JSON escapes are decoded before the text reaches an Error,
/// so an escaped key must be caught too.
std::string spelled_key(std::uint8_t control) {
    std::string key(perplexity_fuzz::api_key);
    if (control & 0x20) {
        key.replace(key.find('-'), 1, "\\u002d");
    }
    if (control & 0x10) {
        key.replace(0, 1, "\\u0070");
    }
    return key;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    perplexity_fuzz::Input input(data, size);
    const std::uint8_t control = input.byte();
    const std::uint16_t position = input.two_bytes();
    const std::string_view body = input.rest();

    px::Error alone;
    px::detail::read_error_body(body, alone);
    check_server_text(alone);
    check(alone.message.empty() && alone.json_path.empty() && !alone.job_id,
          "read_error_body fills only the server's fields", px::to_string(alone));

    const unsigned status = statuses[control & 0x0F];
    const std::optional<std::string> job_id =
        (control & 0x40) ? std::optional<std::string>("job-under-test") : std::nullopt;
    const std::size_t at = position % (body.size() + 1);
    std::string spliced(body.substr(0, at));
    spliced += spelled_key(control);
    spliced += body.substr(at);

    px::detail::HttpResponse response;
    response.result(status);
    response.body() = std::move(spliced);
    auto result = px::detail::read_response<px::Job>(response, "job", job_id, perplexity_fuzz::api_key);
    check(!result.has_value(), "a non-2xx response is an Error");
    const px::Error& error = result.error();
    const std::string printed = px::to_string(error);
    check(error.kind == (status == 429 ? px::ErrorKind::rate_limited : px::ErrorKind::http_status),
          "a non-2xx response is an http_status Error, or rate_limited for 429", printed);
    check(error.http_status == static_cast<int>(status), "the Error carries the status", printed);
    check(!error.message.empty(), "the Error has a message", printed);
    check(error.job_id == job_id, "the Error keeps the job id it was given", printed);
    check_server_text(error);
    perplexity_fuzz::check_key_absent(error);
    return 0;
}
