// Raw bytes from a server, through the Client's response handling: Beast's parser under the Client's
// limits, fed piecewise as socket reads would feed it, then the retry hints and read_response as the
// Client runs them on every complete response.
//
// Input layout: one byte choosing the read sizes (0: everything in one read), one flag byte, then the
// bytes "received".
#include "fuzz_support.hpp"

#include <perplexity/detail/response.hpp>
#include <perplexity/error.hpp>
#include <perplexity/job.hpp>
#include <perplexity/retry.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <chrono>
#include <optional>
#include <string>

namespace {

namespace px = perplexity;
namespace http = boost::beast::http;
using perplexity_fuzz::check;

/// Small, so that inputs of a few KiB can run into both limits.
constexpr px::detail::ExchangeLimits limits{.max_header = 4 * 1024, .max_body = 16 * 1024};

/// Hands out the received bytes in reads of fuzzer-chosen sizes.
class Socket {
  public:
    Socket(std::string_view bytes, std::uint8_t split) : bytes_(bytes), split_(split), state_(split) {}

    /// Appends the next read to `buffer`; false at end of stream.
    bool read_into(std::string& buffer) {
        if (bytes_.empty()) {
            return false;
        }
        std::size_t size = bytes_.size();
        if (split_ != 0) {
            state_ = state_ * 1103515245u + 12345u;
            size = std::min<std::size_t>(size, 1 + (state_ >> 16) % (split_ * 16u));
        }
        buffer.append(bytes_.substr(0, size));
        bytes_.remove_prefix(size);
        return true;
    }

  private:
    std::string_view bytes_;
    std::uint8_t split_;
    std::uint32_t state_;
};

/// Parses until `done` says so, the way Beast's read loop does: put what is buffered, keep what the
/// parser did not use, read more when it needs more, and tell it about the end of the stream.
template <class Done>
boost::system::error_code parse_until(http::response_parser<http::string_body>& parser, Socket& socket,
                                      std::string& buffer, Done done) {
    while (!done()) {
        if (!buffer.empty()) {
            boost::system::error_code ec;
            const std::size_t used = parser.put(boost::asio::buffer(buffer), ec);
            buffer.erase(0, used);
            if (ec && ec != http::error::need_more) {
                return ec;
            }
            if (used != 0 && !ec) {
                continue;
            }
        }
        if (!socket.read_into(buffer)) {
            if (!parser.got_some()) {
                return http::error::end_of_stream;
            }
            boost::system::error_code ec;
            parser.put_eof(ec);
            return ec ? ec : (done() ? boost::system::error_code{} : http::error::partial_message);
        }
    }
    return {};
}

template <class T>
void check_read_response(px::detail::HttpResponse response, std::string_view what,
                         const std::optional<std::string>& job_id) {
    const int status = static_cast<int>(response.result_int());
    auto result = px::detail::read_response<T>(response, what, job_id, perplexity_fuzz::api_key);
    if (result) {
        check(status >= 200 && status < 300, "only a 2xx response decodes");
        return;
    }
    const px::Error& error = result.error();
    const std::string printed = px::to_string(error);
    perplexity_fuzz::check_key_absent(error);
    if (status >= 200 && status < 300) {
        check(error.kind == px::ErrorKind::decode, "a 2xx body that does not decode is a decode Error",
              printed);
        check(error.job_id.has_value() || !job_id, "a decode Error keeps a job id", printed);
        return;
    }
    check(error.kind == (status == 429 ? px::ErrorKind::rate_limited : px::ErrorKind::http_status),
          "a non-2xx response is an http_status Error, or rate_limited for 429", printed);
    check(error.http_status == status, "the Error carries the status", printed);
    check(error.job_id == job_id, "the Error keeps the job id it was given", printed);
    for (const std::string* field : {&error.api_type, &error.api_message, &error.body_excerpt}) {
        check(perplexity_fuzz::printable_ascii(*field) && field->size() <= px::detail::max_server_text + 3,
              "server text in an Error is printable and bounded", printed);
    }
}

/// The retry decision's inputs, read from headers as the Client reads them before any retry.
void check_retry_hints(const px::detail::HttpResponse& response) {
    // A fixed "now" keeps a finding reproducible.
    const std::chrono::system_clock::time_point now{std::chrono::seconds(1767225600)};
    const auto hint = px::parse_retry_hint(response["retry-after-ms"], response["retry-after"], now);
    check(!hint || hint->count() >= 0, "a retry hint is never negative");
    const px::RetryPolicy policy;
    const auto delay = px::retry_delay(policy, 1, hint, 0.5);
    check(delay >= std::chrono::milliseconds(0) &&
              (!hint || (delay >= policy.min_hint && delay <= policy.max_hint)),
          "a server's hint is clamped to the policy");
    (void)px::parse_should_retry(response["x-should-retry"]);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    perplexity_fuzz::Input input(data, size);
    const std::uint8_t split = input.byte();
    const std::uint8_t flags = input.byte();
    Socket socket(input.rest(), split);

    http::response_parser<http::string_body> parser;
    px::detail::apply_limits(parser, limits);
    std::string buffer;
    // As the Client reads: the header first, then the rest of the message.
    parser.eager(false);
    if (parse_until(parser, socket, buffer, [&] { return parser.is_header_done(); })) {
        return 0;
    }
    parser.eager(true);
    if (parse_until(parser, socket, buffer, [&] { return parser.is_done(); })) {
        return 0;
    }
    const px::detail::HttpResponse response = parser.release();

    const int status = static_cast<int>(response.result_int());
    if (status < 200 || status >= 300) {
        check_retry_hints(response);
    }
    const std::optional<std::string> job_id =
        (flags & 1) ? std::optional<std::string>("job-under-test") : std::nullopt;
    check_read_response<px::Job>(response, "job", job_id);
    check_read_response<px::JobPage>(response, "job list", job_id);
    return 0;
}
