// perplexity-bench-raw-beast: the floor of the bench/run workload.
//
// The same HTTP exchanges the library makes, written straight on Beast: C keep-alive TLS connections on one
// thread, no typing, no policies, no pool, no retries, no timeouts. Whatever the library costs beyond this
// program is the price of its abstractions; this program's own cost is what Asio, Beast and OpenSSL charge.
//
// Command-line contract, shared by every native contender of bench/run (this program and
// perplexity-bench-library), so the driver runs them all the same way:
//
//   --base-url URL     the simulator's URL, https://host[:port][/path]; the path, if any, prefixes the API's
//   --ca-file FILE     PEM file of the certificate authority to trust (the simulator's ca.pem)
//   --api-key KEY      bearer token
//   --jobs N           jobs to create and poll to COMPLETED (default 2000)
//   --polls K          polls each job is expected to need (default 5); only echoed back, because a client
//                      polls until the job is COMPLETED whatever the server's pace
//   --connections C    at most C connections at once (default 32)
//   --help             usage
//
// Both `--flag value` and `--flag=value` are accepted. Polling never sleeps. The last line on stdout is one
// JSON object, e.g.
//   {"name":"raw-beast","jobs":2000,"polls":5,"connections":32,"requests":12000,"completed":2000,
//    "failed":0,"elapsed_s":1.234}
// where `requests` counts HTTP requests written (creates and polls), `completed` the jobs seen COMPLETED,
// `failed` the jobs seen FAILED and `elapsed_s` the wall time from start to the last response. Exit status:
// 0 when every job completed, 1 otherwise (the reason on stderr), 2 for a usage error.
#include <openssl/ssl.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

constexpr int usage_status = 2;

constexpr std::string_view usage_text =
    "usage: perplexity-bench-raw-beast --base-url URL --ca-file FILE --api-key KEY\n"
    "                                  [--jobs N] [--polls K] [--connections C]\n"
    "\n"
    "Creates N jobs and polls each to COMPLETED without sleeping, over at most C keep-alive TLS\n"
    "connections, with raw Beast; prints one JSON line of counts at the end.\n";

struct Settings {
    std::string base_url;
    std::string ca_file;
    std::string api_key;
    std::size_t jobs = 2000;
    std::size_t polls = 5;
    std::size_t connections = 32;
};

struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

template <class Number>
Number parse_count(std::string_view flag, std::string_view text) {
    Number value{};
    const char* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc{} || ptr != end) {
        throw UsageError(std::string(flag) + ": not a count: '" + std::string(text) + "'");
    }
    return value;
}

// Returns nullopt for --help.
std::optional<Settings> parse_command_line(int argc, char** argv) {
    Settings settings;
    const std::vector<std::string_view> args(argv + 1, argv + argc);
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string_view flag = args[i];
        std::optional<std::string_view> attached;
        if (const auto eq = flag.find('='); flag.starts_with("--") && eq != std::string_view::npos) {
            attached = flag.substr(eq + 1);
            flag = flag.substr(0, eq);
        }
        if (flag == "--help" || flag == "-h") {
            return std::nullopt;
        }
        const auto value = [&]() -> std::string_view {
            if (attached) {
                return *attached;
            }
            if (i + 1 >= args.size()) {
                throw UsageError(std::string(flag) + " needs a value");
            }
            return args[++i];
        };
        if (flag == "--base-url") {
            settings.base_url = value();
        } else if (flag == "--ca-file") {
            settings.ca_file = value();
        } else if (flag == "--api-key") {
            settings.api_key = value();
        } else if (flag == "--jobs") {
            settings.jobs = parse_count<std::size_t>(flag, value());
        } else if (flag == "--polls") {
            settings.polls = parse_count<std::size_t>(flag, value());
        } else if (flag == "--connections") {
            settings.connections = parse_count<std::size_t>(flag, value());
        } else {
            throw UsageError("unknown argument: " + std::string(flag));
        }
    }
    if (settings.base_url.empty() || settings.ca_file.empty() || settings.api_key.empty()) {
        throw UsageError("--base-url, --ca-file and --api-key are required");
    }
    if (settings.connections == 0) {
        throw UsageError("--connections must be at least 1");
    }
    return settings;
}

struct Origin {
    std::string host;       // without IPv6 brackets: what the certificate is checked against
    std::string port;       // what the resolver takes
    std::string authority;  // the Host header, exactly as written in the URL
    std::string prefix;     // path of the base URL without its trailing slash, often empty
    bool host_is_address = false;
};

Origin parse_base_url(std::string_view url) {
    constexpr std::string_view scheme = "https://";
    if (!url.starts_with(scheme)) {
        throw UsageError("--base-url must start with https://");
    }
    url.remove_prefix(scheme.size());
    const auto slash = url.find('/');
    Origin origin;
    origin.authority = std::string(url.substr(0, slash));
    if (slash != std::string_view::npos) {
        origin.prefix = std::string(url.substr(slash));
        while (!origin.prefix.empty() && origin.prefix.back() == '/') {
            origin.prefix.pop_back();
        }
    }
    std::string_view authority = origin.authority;
    std::string_view port = "443";
    if (authority.starts_with('[')) {
        const auto close = authority.find(']');
        if (close == std::string_view::npos) {
            throw UsageError("--base-url: unterminated IPv6 address");
        }
        origin.host = std::string(authority.substr(1, close - 1));
        if (close + 1 < authority.size()) {
            if (authority[close + 1] != ':') {
                throw UsageError("--base-url: unexpected text after the IPv6 address");
            }
            port = authority.substr(close + 2);
        }
    } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
        origin.host = std::string(authority.substr(0, colon));
        port = authority.substr(colon + 1);
    } else {
        origin.host = std::string(authority);
    }
    if (origin.host.empty() || port.empty()) {
        throw UsageError("--base-url: missing host or port");
    }
    origin.port = std::string(port);
    boost::system::error_code ec;
    asio::ip::make_address(origin.host, ec);
    origin.host_is_address = !ec;
    return origin;
}

// Shared by every connection; the program runs on one thread, so plain counters suffice.
struct Tally {
    std::size_t jobs_claimed = 0;
    std::size_t requests = 0;
    std::size_t completed = 0;
    std::size_t failed = 0;
    std::exception_ptr first_error;
};

using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// The simulator's ids are UUIDs, and the real API's look the same; anything else would need percent-encoding
// in the poll path, which this floor deliberately does not do, so it refuses instead of sending a wrong path.
std::string_view job_id(std::string_view body) {
    constexpr std::string_view key = "\"id\":\"";
    const auto start = body.find(key);
    if (start == std::string_view::npos) {
        throw std::runtime_error("create answer without an id");
    }
    const auto begin = start + key.size();
    const auto end = body.find('"', begin);
    if (end == std::string_view::npos || end == begin) {
        throw std::runtime_error("create answer with an unterminated or empty id");
    }
    const std::string_view id = body.substr(begin, end - begin);
    for (const char c : id) {
        const bool unreserved = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                c == '-' || c == '_' || c == '.' || c == '~';
        if (!unreserved) {
            throw std::runtime_error("job id needs percent-encoding, which the raw baseline does not do");
        }
    }
    return id;
}

enum class Status { pending, completed, failed };

// Searched from the end because the job's own status is its last key; a quoted key cannot occur inside a
// JSON string value, where every quote is escaped.
Status job_status(std::string_view body) {
    constexpr std::string_view key = "\"status\":\"";
    const auto at = body.rfind(key);
    if (at == std::string_view::npos) {
        throw std::runtime_error("poll answer without a status");
    }
    const std::string_view rest = body.substr(at + key.size());
    if (rest.starts_with("COMPLETED\"")) {
        return Status::completed;
    }
    if (rest.starts_with("FAILED\"")) {
        return Status::failed;
    }
    return Status::pending;
}

template <class Request>
asio::awaitable<std::string_view> exchange(TlsStream& stream, const Request& request,
                                           beast::flat_buffer& buffer,
                                           std::optional<http::response_parser<http::string_body>>& parser,
                                           Tally& tally) {
    co_await http::async_write(stream, request, asio::use_awaitable);
    ++tally.requests;
    // A parser reads exactly one message, so each response gets a fresh one in the same frame slot.
    parser.emplace();
    co_await http::async_read(stream, buffer, *parser, asio::use_awaitable);
    const auto& response = parser->get();
    if (response.result() != http::status::ok) {
        throw std::runtime_error("HTTP " + std::to_string(response.result_int()) + ": " + response.body());
    }
    if (!response.keep_alive()) {
        throw std::runtime_error("the server closed a keep-alive connection; the floor does not reconnect");
    }
    co_return std::string_view(response.body());
}

template <class Body>
void set_common_fields(http::request<Body>& request, const Origin& origin, const std::string& authorization) {
    request.set(http::field::host, origin.authority);
    request.set(http::field::authorization, authorization);
    request.set(http::field::accept, "application/json");
    request.set(http::field::user_agent, "perplexity-bench-raw-beast");
}

// One connection's whole life: connect, then claim jobs until none are left, one at a time.
asio::awaitable<void> run_connection(const Settings& settings, const Origin& origin,
                                     const tcp::resolver::results_type& endpoints, ssl::context& tls,
                                     Tally& tally) {
    TlsStream stream(co_await asio::this_coro::executor, tls);
    if (!origin.host_is_address &&
        SSL_set_tlsext_host_name(stream.native_handle(), origin.host.c_str()) != 1) {
        throw std::runtime_error("cannot set SNI");
    }
    stream.set_verify_callback(ssl::host_name_verification(origin.host));
    co_await beast::get_lowest_layer(stream).async_connect(endpoints, asio::use_awaitable);
    beast::get_lowest_layer(stream).socket().set_option(tcp::no_delay(true));
    co_await stream.async_handshake(ssl::stream_base::client, asio::use_awaitable);

    const std::string collection = origin.prefix + "/async/chat/completions";
    const std::string authorization = "Bearer " + settings.api_key;

    http::request<http::string_body> create{http::verb::post, collection, 11};
    set_common_fields(create, origin, authorization);
    create.set(http::field::content_type, "application/json");
    create.body() = R"({"request":{"model":"sonar-deep-research","messages":)"
                    R"([{"role":"user","content":"How many stars are in the Milky Way?"}]}})";
    create.prepare_payload();

    http::request<http::empty_body> poll{http::verb::get, collection, 11};
    set_common_fields(poll, origin, authorization);

    beast::flat_buffer buffer;
    std::optional<http::response_parser<http::string_body>> parser;
    std::string target;

    while (tally.jobs_claimed < settings.jobs) {
        ++tally.jobs_claimed;
        const std::string_view created = co_await exchange(stream, create, buffer, parser, tally);
        target.assign(collection).append("/").append(job_id(created));
        poll.target(target);
        for (;;) {
            const Status status = job_status(co_await exchange(stream, poll, buffer, parser, tally));
            if (status == Status::completed) {
                ++tally.completed;
                break;
            }
            if (status == Status::failed) {
                ++tally.failed;
                break;
            }
        }
    }

    // The measured work is over; a polite close_notify is still owed, but not at any price.
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
    boost::system::error_code ignored;
    co_await stream.async_shutdown(asio::redirect_error(asio::use_awaitable, ignored));
}

}  // namespace

int main(int argc, char** argv) {
    std::optional<Settings> parsed;
    Origin origin;
    try {
        parsed = parse_command_line(argc, argv);
        if (!parsed) {
            std::cout << usage_text;
            return 0;
        }
        origin = parse_base_url(parsed->base_url);
    } catch (const UsageError& e) {
        std::cerr << "perplexity-bench-raw-beast: " << e.what() << "\n\n" << usage_text;
        return usage_status;
    }
    const Settings& settings = *parsed;

    try {
        const auto started = std::chrono::steady_clock::now();
        asio::io_context io(1);

        ssl::context tls(ssl::context::tls_client);
        if (SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_2_VERSION) != 1) {
            throw std::runtime_error("cannot require TLS 1.2");
        }
        tls.set_verify_mode(ssl::verify_peer);
        tls.load_verify_file(settings.ca_file);

        tcp::resolver resolver(io);
        const auto endpoints = resolver.resolve(origin.host, origin.port);

        Tally tally;
        // More connections than jobs would only add handshakes that carry no request.
        const std::size_t connections = std::min(settings.connections, settings.jobs);
        for (std::size_t i = 0; i < connections; ++i) {
            asio::co_spawn(io, run_connection(settings, origin, endpoints, tls, tally),
                           [&tally](std::exception_ptr error) {
                               if (error && !tally.first_error) {
                                   tally.first_error = error;
                               }
                           });
        }
        io.run();
        const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - started;

        if (tally.first_error) {
            try {
                std::rethrow_exception(tally.first_error);
            } catch (const std::exception& e) {
                std::cerr << "perplexity-bench-raw-beast: a connection stopped: " << e.what() << '\n';
            }
        }
        char elapsed_text[32];
        std::snprintf(elapsed_text, sizeof elapsed_text, "%.3f", elapsed.count());
        std::cout << R"({"name":"raw-beast","jobs":)" << settings.jobs << R"(,"polls":)" << settings.polls
                  << R"(,"connections":)" << connections << R"(,"requests":)" << tally.requests
                  << R"(,"completed":)" << tally.completed << R"(,"failed":)" << tally.failed
                  << R"(,"elapsed_s":)" << elapsed_text << "}" << std::endl;
        return tally.completed == settings.jobs ? 0 : 1;
    } catch (const std::exception& e) {
        std::cerr << "perplexity-bench-raw-beast: " << e.what() << '\n';
        return 1;
    }
}
