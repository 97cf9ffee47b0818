// service: a small HTTP service in front of the API. Clients POST a question and get a job id at once;
// the service waits on the job in the background with one shared Client, and clients GET its state.
//
//   service --listen 127.0.0.1:8080
//   curl -d '{"question": "How many moons has Mars?"}' http://127.0.0.1:8080/questions
//   curl http://127.0.0.1:8080/questions/JOB_ID
//
// One thread and one io_context serve everything: the Client is not thread-safe, and a single thread
// keeps up with thousands of waiting jobs (they cost a timer each while they sleep).
//
// Each question is one Client::run (with --api agent, Client::run_response, an Agent API background
// response); its POST is answered as soon as the run's create is. The service remembers the
// Idempotency-Key headers itself and answers a repeated POST with the id the key made, so that one
// question is one run: the Agent API has no idempotency key at all, and a second run of the same Sonar
// job would only be a second wait on it.
//
// With --ledger FILE the runs are recorded in a SQLite ledger (ClientOptions::ledger), each labelled with
// its Idempotency-Key. A restarted service reads the ledger into its table, so the ids it handed out
// still answer GET and the keys it saw still find their ids, and lets Client::resume carry the
// unfinished runs on in the background.
//
// With --ledger postgresql://... the service is one replica of a fleet on one PostgreSQL database
// (PostgresLedger): ids and keys it does not know are looked up in the shared ledger, creates are paced
// for the whole fleet (--creates-per-minute is the account's rate), and every half lease it calls
// Client::resume, which takes over the unfinished runs of replicas whose lease ran out.
//
// Every POST spends the account's money, so only callers who belong may make one. With --token-file
// FILE (or PERPLEXITY_SERVICE_TOKEN) every request but GET /healthz must carry
// "Authorization: Bearer TOKEN", or gets 401 and starts nothing; GET /healthz, for load balancers, shows
// only the count in flight. Without a token the service listens only on loopback (127.0.0.0/8, ::1);
// anywhere else it refuses to start. There is no --token: the command line is visible to every user.
//
//   service --listen 0.0.0.0:8080 --token-file /etc/perplexity-service/token
//   curl -H @auth.header http://HOST:8080/questions/JOB_ID    # auth.header: "Authorization: Bearer TOKEN"
#include "example_support.hpp"

#include <perplexity/postgres_ledger.hpp>
#include <perplexity/sqlite_ledger.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <future>
#include <iostream>
#include <list>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
namespace px = perplexity;
using tcp = asio::ip::tcp;

namespace {

enum ExitCode { stopped = 0, start_failed = 1, usage_error = 2 };

constexpr std::string_view usage = R"(usage: service [options]

An HTTP service that asks the API on behalf of its clients:
  POST /questions        {"question": "..."} -> 202 {"id": JOB_ID, "status": ...} once the job is
                         created; a client that repeats its POST with the same Idempotency-Key
                         header gets the same job: the service remembers the keys as long as their
                         questions (with --ledger, across restarts), and passes them on to the Sonar
                         API; a repeat while the first create is still under way gets 409
  GET /questions/ID      {"id", "status", "question", and "answer" or "error" when it ended}; 404
                         for an id this service does not know
  GET /healthz           {"status": "ok", "in_flight": N}; needs no token, and with one shows nothing
                         more (without one also "known": the questions remembered)
Answers: 400 bad JSON or no question, 401 no or wrong bearer token (with www-authenticate: Bearer),
413 body too large, 503 too many jobs in flight (with retry-after), 502 the API could not be reached
or refused.

options:
  --listen ADDR:PORT     where to listen (default 127.0.0.1:8080); port 0 picks a free one. The
                         first line on stdout is "listening on http://ADDR:PORT". An address other
                         than 127.0.0.0/8 or ::1 (0.0.0.0 and :: included) needs a token.
  --token-file FILE      callers must send "Authorization: Bearer TOKEN", TOKEN being the first line
                         of FILE (trailing whitespace dropped; printable ASCII, e.g. from
                         'openssl rand -hex 32'); any request but GET /healthz without it gets 401
                         and starts nothing. Without --token-file the token is taken from
                         PERPLEXITY_SERVICE_TOKEN, if set. There is no --token: a command line is
                         visible to every user of the machine. The token is never printed.
  --max-in-flight N      jobs being created or waited on at once; more get 503 (default 64)
  --max-body BYTES       largest request body accepted (default 16384)
  --max-connections N    open client connections at once; more are closed at once (default 256)
  --keep-finished N      finished questions remembered for GET, oldest forgotten first
                         (default 1000)
  --creates-per-minute N space creates evenly at this rate (default 0: no spacing)
  --deadline SECONDS     per job: stop waiting after this long and report an error (default 1800)
  --api sonar|agent      which API to ask: Sonar async jobs (the default), or Agent API background
                         responses, whose ids are the response ids
  --model NAME           model to use (sonar default: sonar-deep-research; with --api agent, a
                         provider-prefixed model such as perplexity/sonar, used instead of the preset)
  --preset NAME          --api agent: the preset to run (default: medium)
  --ledger FILE          record every job in this SQLite ledger (created if missing). A restart
                         with the same file answers GET for the ids handed out before and carries
                         their unfinished jobs on: none is created twice. One service per file.
  --ledger postgresql://USER@HOST:PORT/DB
                         run as one replica of a fleet sharing this PostgreSQL database (a libpq
                         URI; keep the password out of it: libpq reads PGPASSWORD or ~/.pgpass).
                         Any replica answers for any id or key of the fleet; --creates-per-minute
                         is the whole fleet's rate; a replica that dies has its unfinished jobs
                         carried on by the others once its lease runs out.
  --replica NAME         with PostgreSQL: this replica's name, unique among the live ones and kept
                         across its restarts (default: host name and process id)
  --lease-ms N           with PostgreSQL: how long a dead replica's jobs wait before the others take
                         them over (default 15000)
)";

constexpr std::string_view usage_tail = R"(  -h, --help             show this help

SIGINT or SIGTERM stops the service: it stops accepting, cancels the waits (the jobs, and with
--api agent the responses, keep running on the API) and exits 0.
exit codes: 0 stopped by a signal, 1 could not listen or open the ledger (in use by another
            service, unreadable), 2 usage or configuration error (among them: no token for an
            address beyond loopback, a token file that cannot be read, an empty token)
)";

struct Arguments {
    examples::ConnectionFlags connection{};
    std::string listen = "127.0.0.1:8080";
    std::size_t max_in_flight = 64;
    std::size_t max_body = 16 * 1024;
    std::size_t max_connections = 256;
    std::size_t keep_finished = 1000;
    unsigned creates_per_minute = 0;
    std::chrono::seconds deadline{1800};
    examples::ApiFlags api{};
    std::string ledger{};
    std::string replica{};
    std::chrono::milliseconds lease{15000};
    /// --token-file; without it the token comes from PERPLEXITY_SERVICE_TOKEN, if set.
    std::optional<std::string> token_file{};
};

/// Whether --ledger names a PostgreSQL database (a libpq URI) rather than a SQLite file.
bool is_postgres(const std::string& ledger) {
    return ledger.starts_with("postgresql://") || ledger.starts_with("postgres://");
}

std::optional<Arguments> parse_arguments(int argc, char** argv) {
    Arguments arguments;
    examples::Flags flags("service", argc, argv);
    while (flags.next()) {
        const std::string_view word = flags.word();
        bool bad = false;
        if (examples::parse_common_flag(flags, arguments.connection, usage, usage_tail, stopped, bad)) {
            // handled
        } else if (word == "--token" || word.starts_with("--token=")) {
            // Its value is not echoed: it would be the secret.
            flags.complain(
                "there is no --token option: the command line is visible to every user of the machine. Put "
                "the token in a file readable only by the service and pass --token-file FILE, or set "
                "PERPLEXITY_SERVICE_TOKEN");
            return std::nullopt;
        } else if (word == "--token-file") {
            arguments.token_file = flags.value();
            bad = !arguments.token_file;
        } else if (word == "--listen" || word == "--ledger" || word == "--replica") {
            const auto value = flags.value();
            bad = !value;
            (word == "--listen"   ? arguments.listen
             : word == "--ledger" ? arguments.ledger
                                  : arguments.replica) = value.value_or("");
        } else if (word == "--lease-ms") {
            const auto n = flags.number(300, 3600000);
            bad = !n;
            arguments.lease = std::chrono::milliseconds(n.value_or(15000));
        } else if (arguments.api.parse(flags, bad)) {
            // handled
        } else if (word == "--max-in-flight" || word == "--max-body" || word == "--max-connections" ||
                   word == "--keep-finished") {
            const auto n = flags.number(1);
            bad = !n;
            (word == "--max-in-flight"     ? arguments.max_in_flight
             : word == "--max-body"        ? arguments.max_body
             : word == "--max-connections" ? arguments.max_connections
                                           : arguments.keep_finished) =
                static_cast<std::size_t>(n.value_or(1));
        } else if (word == "--creates-per-minute") {
            const auto n = flags.number(0, 1000000);
            bad = !n;
            arguments.creates_per_minute = static_cast<unsigned>(n.value_or(0));
        } else if (word == "--deadline") {
            const auto n = flags.number(1);
            bad = !n;
            arguments.deadline = std::chrono::seconds(n.value_or(1));
        } else {
            flags.unknown();
            return std::nullopt;
        }
        if (bad) {
            return std::nullopt;
        }
    }
    if (!arguments.api.consistent("service")) {
        return std::nullopt;
    }
    if ((!arguments.replica.empty() || arguments.lease != std::chrono::milliseconds(15000)) &&
        !is_postgres(arguments.ledger)) {
        std::cerr << "service: --replica and --lease-ms need --ledger postgresql://...\n";
        return std::nullopt;
    }
    return arguments;
}

/// Opens the fleet's ledger, running `io` until it is open (nothing else is on it yet).
px::expected<std::shared_ptr<px::PostgresLedger>, px::Error> open_fleet_ledger(asio::io_context& io,
                                                                               const Arguments& arguments) {
    px::PostgresLedgerOptions options;
    options.replica = arguments.replica;
    options.lease = arguments.lease;
    options.on_background_error = [](const px::Error& error) {
        std::cerr << "service: " << px::to_string(error) << "\n";
    };
    auto opening = asio::co_spawn(io, px::PostgresLedger::open(io.get_executor(), arguments.ledger, options),
                                  asio::use_future);
    while (opening.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
        io.run_one();
    }
    return opening.get();
}

std::optional<tcp::endpoint> parse_endpoint(const std::string& text) {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos) {
        return std::nullopt;
    }
    std::string host = text.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    boost::system::error_code ec;
    const auto address = asio::ip::make_address(host, ec);
    unsigned long port = 0;
    const std::string port_text = text.substr(colon + 1);
    const auto [end, error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec || port_text.empty() || error != std::errc{} || end != port_text.data() + port_text.size() ||
        port > 65535) {
        return std::nullopt;
    }
    return tcp::endpoint(address, static_cast<unsigned short>(port));
}

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

Response json_response(http::status status, const json::object& body) {
    Response response{status, 11};
    response.set(http::field::content_type, "application/json");
    response.set(http::field::server, "perplexity-async-example");
    response.body() = json::serialize(body) + "\n";
    return response;
}

Response error_response(http::status status, std::string message) {
    return json_response(status, {{"error", std::move(message)}});
}

/// Whether the service may listen on `address` without a token: only on loopback, 127.0.0.0/8 or ::1.
/// 0.0.0.0 and :: are every interface, and an IPv4-mapped ::ffff:127.x.y.z counts as elsewhere.
bool loopback(const asio::ip::address& address) {
    return address.is_v4() ? (address.to_v4().to_uint() >> 24) == 127
                           : address.to_v6() == asio::ip::address_v6::loopback();
}

/// The bearer token callers must present (--token-file, or PERPLEXITY_SERVICE_TOKEN). Only its SHA-256
/// digest is kept, and a presented token is checked by comparing digests in constant time: the time
/// depends neither on where the two differ nor on the configured token's length. No message here ever
/// contains a token.
class BearerToken {
  public:
    /// Longest token accepted; the request header limit is 8 KiB.
    static constexpr std::size_t max_size = 4096;

    /// The token of the first line of `file` (trailing whitespace dropped), else of the environment;
    /// none when neither is given. An unreadable file or an empty or unusable token is an error.
    static px::expected<std::optional<BearerToken>, std::string> configure(
        const std::optional<std::string>& file) {
        std::string token;
        std::string origin;
        if (file) {
            origin = "the token file " + *file;
            const std::unique_ptr<std::FILE, int (*)(std::FILE*)> stream(std::fopen(file->c_str(), "rb"),
                                                                         &std::fclose);
            if (!stream) {
                return px::unexpected("cannot read " + origin + ": " + std::strerror(errno));
            }
            int c = 0;
            while ((c = std::getc(stream.get())) != EOF && c != '\n' && token.size() <= max_size) {
                token.push_back(static_cast<char>(c));
            }
            if (std::ferror(stream.get())) {
                return px::unexpected("cannot read " + origin + ": " + std::strerror(errno));
            }
            if (token.size() > max_size) {
                return px::unexpected("the first line of " + origin + " is longer than " +
                                      std::to_string(max_size) + " characters");
            }
        } else if (const char* variable = std::getenv("PERPLEXITY_SERVICE_TOKEN")) {
            origin = "PERPLEXITY_SERVICE_TOKEN";
            token = variable;
        } else {
            return std::nullopt;
        }
        while (!token.empty() && std::strchr(" \t\r\n\v\f", token.back()) != nullptr) {
            token.pop_back();
        }
        if (token.empty()) {
            return px::unexpected(origin + (file ? " has an empty first line" : " is empty") +
                                  "; the token must not be empty");
        }
        if (token.size() > max_size) {
            return px::unexpected(origin + " is longer than " + std::to_string(max_size) + " characters");
        }
        for (const char c : token) {
            if (c < '!' || c > '~') {
                return px::unexpected("the token in " + origin +
                                      " has a space, a control or a non-ASCII character; a token must "
                                      "be printable ASCII, such as the output of 'openssl rand -hex 32'");
            }
        }
        const auto digest = sha256(token);
        if (!digest) {
            return px::unexpected(std::string("cannot compute SHA-256"));
        }
        return std::optional(BearerToken(*digest));
    }

    /// None when `request` carries exactly one `Authorization: Bearer TOKEN` header with this token
    /// (the scheme in any case); else the 401 to answer it with.
    std::optional<Response> refusal(const Request& request) const {
        const auto headers = request.count(http::field::authorization);
        if (headers == 0) {
            return unauthorized("this service needs an Authorization: Bearer header", false);
        }
        std::string_view credentials = request[http::field::authorization];
        constexpr std::string_view scheme = "bearer ";
        if (headers > 1 || credentials.size() <= scheme.size() ||
            !beast::iequals(credentials.substr(0, scheme.size()), scheme)) {
            return unauthorized("the Authorization header must be one 'Bearer TOKEN'", true);
        }
        credentials.remove_prefix(scheme.size());
        while (!credentials.empty() && credentials.front() == ' ') {
            credentials.remove_prefix(1);
        }
        const auto presented = sha256(credentials);
        // CRYPTO_memcmp reads all 32 bytes whatever they hold.
        if (!presented || CRYPTO_memcmp(presented->data(), digest_.data(), digest_.size()) != 0) {
            return unauthorized("the bearer token is not valid", true);
        }
        return std::nullopt;
    }

  private:
    using Digest = std::array<unsigned char, 32>;

    explicit BearerToken(const Digest& digest) : digest_(digest) {}

    static std::optional<Digest> sha256(std::string_view text) {
        Digest digest{};
        unsigned int size = 0;
        if (EVP_Digest(text.data(), text.size(), digest.data(), &size, EVP_sha256(), nullptr) != 1 ||
            size != digest.size()) {
            return std::nullopt;
        }
        return digest;
    }

    /// RFC 6750: a request without credentials gets a bare challenge, one with bad credentials says so.
    static Response unauthorized(std::string message, bool invalid) {
        Response response = error_response(http::status::unauthorized, std::move(message));
        response.set(http::field::www_authenticate, invalid ? R"(Bearer error="invalid_token")" : "Bearer");
        return response;
    }

    Digest digest_;
};

/// Cancellation signals of the operations in progress, so that shutdown can cancel each of them.
class Cancellations {
  public:
    using Handle = std::list<asio::cancellation_signal>::iterator;
    Handle add() { return signals_.emplace(signals_.end()); }
    void remove(Handle handle) { signals_.erase(handle); }
    void cancel_all() {
        for (auto& signal : signals_) {
            signal.emit(asio::cancellation_type::terminal);
        }
    }

  private:
    std::list<asio::cancellation_signal> signals_;
};

/// What GET /questions/ID shows.
struct Question {
    std::string text{};
    std::string status{};
    std::optional<std::string> answer{};
    std::optional<std::string> error{};
    /// The Idempotency-Key it was created with, forgotten with it.
    std::optional<std::string> key{};
};

/// What a POST waits for: the id its run's create was answered with, or why the run ended without one.
struct Creation {
    explicit Creation(asio::io_context& io) : decided(io, asio::steady_timer::time_point::max()) {}

    bool settled() const { return id || failed; }
    void decide(const std::string& job_id) {
        id = job_id;
        decided.cancel();
    }
    void fail(const px::Error& why) {
        error = why;
        failed = true;
        decided.cancel();
    }

    asio::steady_timer decided;
    std::optional<std::string> id{};
    px::Error error{};
    bool failed = false;
};

/// The question a recorded request asked: the last message of a Sonar request, the input of an Agent
/// API one (this service sends only text). Empty for a request it cannot read.
std::string recorded_question(const px::LedgerEntry& entry) {
    boost::system::error_code ec;
    const json::value request = json::parse(entry.request, ec);
    const json::object* object = ec ? nullptr : request.if_object();
    const json::value* text = nullptr;
    if (object != nullptr && entry.api == px::LedgerApi::agent) {
        text = object->if_contains("input");
    } else if (object != nullptr) {
        const json::value* messages = object->if_contains("messages");
        if (messages != nullptr && messages->is_array() && !messages->as_array().empty() &&
            messages->as_array().back().is_object()) {
            text = messages->as_array().back().as_object().if_contains("content");
        }
    }
    return text != nullptr && text->is_string() ? std::string(text->as_string()) : std::string();
}

class Service {
  public:
    /// With a `token`, every request but GET /healthz must present it.
    Service(asio::io_context& io, px::Client& client, const Arguments& arguments,
            std::optional<BearerToken> token)
        : io_(io), client_(client), arguments_(arguments), token_(std::move(token)), acceptor_(io) {}

    /// Binds and listens; returns the address actually bound (the port is chosen when 0 was asked for).
    /// Connections wait in the backlog until `start_accepting`.
    tcp::endpoint listen(const tcp::endpoint& endpoint) {
        acceptor_.open(endpoint.protocol());
        acceptor_.set_option(tcp::acceptor::reuse_address(true));
        acceptor_.bind(endpoint);
        acceptor_.listen();
        return acceptor_.local_endpoint();
    }

    /// --ledger postgresql://: lookups of unknown ids and keys go to `ledger`, and every half lease
    /// `resume` takes over the runs of replicas whose lease ran out.
    void join_fleet(std::shared_ptr<px::PostgresLedger> ledger, std::chrono::milliseconds lease) {
        fleet_ = std::move(ledger);
        asio::co_spawn(io_, take_over_now_and_then(lease / 2), report_exception);
    }

    void start_accepting() {
        if (!std::exchange(accepting_, true)) {
            asio::co_spawn(io_, accept_loop(), report_exception);
        }
    }

    /// --ledger: fills the table from the ledger, before anything is served. Only entries with a job id
    /// can have been handed out (a POST is answered once its create is), so only those are listed; the
    /// unfinished ones stay as last seen until `resume` carries them on.
    void load(const std::vector<px::LedgerEntry>& entries) {
        for (const px::LedgerEntry& entry : entries) {
            if (entry.job_id.empty()) {
                continue;
            }
            const std::string& id = entry.job_id;
            std::optional<std::string> key;
            if (!entry.label.empty()) {
                key = entry.label;
                keys_[entry.label] = id;
            }
            questions_[id] = Question{.text = recorded_question(entry),
                                      .status = entry.status.empty() ? std::string("running") : entry.status,
                                      .key = key};
            if (entry.state == px::EntryState::dropped ||
                (entry.state == px::EntryState::failed && entry.result.empty())) {
                give_up(id, entry.error);
            } else if (entry.state == px::EntryState::completed || entry.state == px::EntryState::failed) {
                if (entry.api == px::LedgerApi::agent) {
                    finish_response(id, examples::recorded_response(entry));
                } else {
                    finish(id, examples::recorded_job(entry));
                }
            }
        }
    }

    /// --ledger: carries the ledger's unfinished runs on in the background, while new questions are taken
    /// (Client::resume leaves alone the entries the Client's own runs are working on).
    void resume() {
        px::ResumeOptions options;
        options.wait.poll = options.wait_response.poll = poll_policy();
        options.wait.on_progress = options.wait_response.on_progress = status_follower();
        // `keep` sees each entry resume carries on: each is in flight until its on_job or on_response.
        options.keep = [this](const px::LedgerEntry&) {
            ++in_flight_;
            return true;
        };
        options.on_job = [this](const px::LedgerEntry& entry,
                                const px::expected<px::Job, px::Error>& result) {
            --in_flight_;
            if (const auto id = resumed(entry, result ? result->id : result.error().job_id.value_or(""))) {
                finish(*id, result);
            }
        };
        options.on_response = [this](const px::LedgerEntry& entry,
                                     const px::expected<px::Response, px::Error>& result) {
            --in_flight_;
            if (const auto id = resumed(entry, result ? result->id : result.error().job_id.value_or(""))) {
                finish_response(*id, result);
            }
        };
        const auto cancel = cancellations_.add();
        asio::co_spawn(
            io_, client_.resume(std::move(options)),
            asio::bind_cancellation_slot(
                cancel->slot(),
                [this, cancel](std::exception_ptr thrown, px::expected<px::ResumeReport, px::Error> report) {
                    asio::post(io_, [this, cancel] { cancellations_.remove(cancel); });
                    if (thrown) {
                        report_exception(thrown);
                    } else if (!report) {
                        std::cerr << "service: cannot carry on the ledger's unfinished jobs: "
                                  << px::to_string(report.error()) << "\n";
                    } else {
                        for (const px::LedgerEntry& entry : report->stale) {
                            give_up(entry.job_id,
                                    "not carried on after a restart: too old to wait on safely");
                        }
                        if (!report->unfindable.empty()) {
                            // Their POSTs were never answered, so no client has their ids.
                            std::cerr
                                << "service: " << report->unfindable.size()
                                << " Agent API creates sent before a restart were never answered; "
                                   "a response may exist that cannot be found, and none is sent again\n";
                        }
                    }
                }));
    }

    /// Stops accepting, cancels every run (and resume), and closes the connections; io_context::run then
    /// returns once their coroutines have unwound.
    void stop() {
        stopping_ = true;
        takeover_timer_.cancel();
        boost::system::error_code ignored;
        acceptor_.close(ignored);
        cancellations_.cancel_all();
        for (beast::tcp_stream* stream : connections_) {
            stream->socket().close(ignored);
        }
    }

  private:
    static void report_exception(std::exception_ptr error) {
        if (error) {
            try {
                std::rethrow_exception(error);
            } catch (const std::exception& e) {
                std::cerr << "service: internal error: " << e.what() << "\n";
            }
        }
    }

    asio::awaitable<void> take_over_now_and_then(std::chrono::milliseconds interval) {
        while (!stopping_) {
            takeover_timer_.expires_after(interval);
            boost::system::error_code ec;
            co_await takeover_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            if (ec || stopping_) {
                break;
            }
            resume();
        }
    }

    asio::awaitable<void> accept_loop() {
        while (!stopping_) {
            boost::system::error_code ec;
            tcp::socket socket =
                co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
            if (stopping_) {
                break;
            }
            if (ec) {
                // Out of descriptors and the like: pause instead of spinning on the error.
                asio::steady_timer pause(io_, std::chrono::milliseconds(50));
                co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            } else if (connections_.size() >= arguments_.max_connections) {
                socket.close(ec);  // each connection costs a coroutine and buffers: bounded too
            } else {
                asio::co_spawn(io_, serve(std::move(socket)), report_exception);
            }
        }
    }

    asio::awaitable<void> serve(tcp::socket socket) {
        beast::tcp_stream stream(std::move(socket));
        connections_.insert(&stream);
        beast::flat_buffer buffer;
        for (;;) {
            boost::system::error_code ec;
            http::request_parser<http::string_body> parser;
            parser.header_limit(8 * 1024);
            parser.body_limit(arguments_.max_body);
            // An idle or slow client cannot hold a connection for ever.
            stream.expires_after(std::chrono::seconds(30));
            co_await http::async_read(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
            Response response;
            bool keep_alive = false;
            if (ec == http::error::body_limit) {
                response = error_response(
                    http::status::payload_too_large,
                    "the body is larger than " + std::to_string(arguments_.max_body) + " bytes");
            } else if (ec && ec.category() == http::make_error_code(http::error::bad_target).category() &&
                       ec != http::error::end_of_stream && ec != http::error::partial_message) {
                response = error_response(http::status::bad_request, "malformed HTTP request");
            } else if (ec || stopping_) {
                break;
            } else {
                Request request = parser.release();
                response = co_await handle(request);
                keep_alive = request.keep_alive() && !stopping_;
                std::cerr << "service: " << request.method_string() << " " << request.target() << " -> "
                          << response.result_int() << "\n";
            }
            response.keep_alive(keep_alive);
            response.prepare_payload();
            stream.expires_after(std::chrono::seconds(30));
            co_await http::async_write(stream, response, asio::redirect_error(asio::use_awaitable, ec));
            if (ec || !keep_alive) {
                break;
            }
        }
        connections_.erase(&stream);
        boost::system::error_code ignored;
        stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    }

    asio::awaitable<Response> handle(const Request& request) {
        const std::string_view target = request.target();
        const std::string_view path = target.substr(0, target.find('?'));
        constexpr std::string_view item_prefix = "/questions/";
        // Load balancers' health checks carry no credentials: GET /healthz is the one request let through,
        // before anything else is looked at, and with a token it shows the count in flight and no more.
        if (path == "/healthz" && request.method() == http::verb::get) {
            json::object health{{"status", "ok"}, {"in_flight", in_flight_}};
            if (!token_) {
                health["known"] = questions_.size();
            }
            co_return json_response(http::status::ok, health);
        }
        if (token_) {
            if (auto refusal = token_->refusal(request)) {
                co_return std::move(*refusal);
            }
        }
        if (path == "/healthz") {
            co_return method_not_allowed("GET");
        }
        if (path == "/questions") {
            if (request.method() != http::verb::post) {
                co_return method_not_allowed("POST");
            }
            co_return co_await post_question(request);
        }
        if (path.starts_with(item_prefix) && path.size() > item_prefix.size()) {
            if (request.method() != http::verb::get) {
                co_return method_not_allowed("GET");
            }
            std::string id(path.substr(item_prefix.size()));
            if (fleet_ && !questions_.contains(id)) {
                co_return co_await get_fleet_question(std::move(id));
            }
            co_return get_question(id);
        }
        co_return error_response(http::status::not_found, "no such resource");
    }

    static Response method_not_allowed(const char* allowed) {
        Response response = error_response(http::status::method_not_allowed, "method not allowed");
        response.set(http::field::allow, allowed);
        return response;
    }

    asio::awaitable<Response> post_question(const Request& request) {
        boost::system::error_code ec;
        const json::value body = json::parse(request.body(), ec);
        const json::object* object = ec ? nullptr : body.if_object();
        const json::value* question = object ? object->if_contains("question") : nullptr;
        if (question == nullptr || !question->is_string() || question->as_string().empty()) {
            co_return error_response(http::status::bad_request,
                                     ec ? "the body is not JSON: " + ec.message()
                                        : "expected a JSON object with a non-empty string \"question\"");
        }
        if (in_flight_ >= arguments_.max_in_flight) {
            Response response = error_response(http::status::service_unavailable,
                                               "too many questions in flight; try again shortly");
            response.set(http::field::retry_after, "1");
            co_return response;
        }
        std::optional<std::string> key;
        if (const auto header = request.find("idempotency-key"); header != request.end()) {
            key = std::string(header->value());
        }
        if (key && fleet_ && !keys_.contains(*key)) {
            // Another replica may have been asked first (and may have died since).
            px::LedgerQuery by_key;
            by_key.label = *key;
            auto found = co_await fleet_->find(std::move(by_key));
            if (!found) {
                co_return ledger_unavailable(found.error());
            }
            if (auto answer = known_to_fleet(*found)) {
                co_return std::move(*answer);
            }
        }
        if (key) {
            if (const auto known = keys_.find(*key); known != keys_.end()) {
                if (!known->second) {
                    Response response = error_response(
                        http::status::conflict,
                        "a question with this Idempotency-Key is being created; repeat the request shortly");
                    response.set(http::field::retry_after, "1");
                    co_return response;
                }
                const auto question = questions_.find(*known->second);
                co_return json_response(http::status::accepted,
                                        {{"id", *known->second},
                                         {"status", question == questions_.end() ? std::string("unknown")
                                                                                 : question->second.status}});
            }
        }
        const std::string text(question->as_string());

        ++in_flight_;  // counted from now, so concurrent POSTs cannot overshoot the limit while creating
        if (key) {
            keys_.emplace(*key, std::nullopt);  // a create under way
        }
        const auto creation = std::make_shared<Creation>(io_);
        if (arguments_.api.agent) {
            run_response(text, key, creation);
        } else {
            run_job(text, key, creation);
        }
        while (!creation->settled()) {
            boost::system::error_code ignored;
            co_await creation->decided.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
        }
        if (!creation->id) {
            const px::Error& error = creation->error;
            Response response =
                error_response(error.kind == px::ErrorKind::rate_limited ? http::status::service_unavailable
                                                                         : http::status::bad_gateway,
                               std::string("the API did not create the ") +
                                   (arguments_.api.agent ? "response: " : "job: ") + px::to_string(error));
            if (error.kind == px::ErrorKind::rate_limited) {
                response.set(http::field::retry_after, "5");
            }
            co_return response;
        }
        const std::string id = *creation->id;
        if (stopping_) {
            co_return json_response(http::status::service_unavailable,
                                    {{"id", id}, {"error", "the service is stopping; the job was created"}});
        }
        const auto known = questions_.find(id);
        co_return json_response(
            http::status::accepted,
            {{"id", id},
             {"status", known == questions_.end() ? std::string("unknown") : known->second.status}});
    }

    /// The poll policy of every wait: the service's own deadline per job.
    px::PollPolicy poll_policy() const {
        px::PollPolicy poll = client_.options().poll;
        poll.deadline = arguments_.deadline;
        return poll;
    }

    /// Follows the status of a question while its job is waited on.
    px::ProgressHandler status_follower() {
        return [this](const px::ProgressEvent& event) {
            if (event.kind != px::ProgressEvent::Kind::status_changed ||
                (event.job == nullptr && event.response == nullptr)) {
                return;
            }
            const std::string& id = event.job != nullptr ? event.job->id : event.response->id;
            const std::string& status =
                event.job != nullptr ? event.job->status_text : event.response->status_text;
            if (const auto question = questions_.find(id); question != questions_.end()) {
                question->second.status = status;
            }
        };
    }

    /// The table learns of a question as soon as its create is answered, before its POST is.
    void created(const std::string& id, const std::string& status, const std::string& text,
                 const std::optional<std::string>& key, Creation& creation) {
        // A repeat of a forgotten key comes back with the job the Sonar API still has for it: the entry
        // of the table, if there still is one, is kept.
        questions_.try_emplace(id, Question{.text = text, .status = status, .key = key});
        if (key) {
            keys_[*key] = id;
        }
        creation.decide(id);
    }

    /// Callback style on purpose: nothing awaits the run, its completion handler files the result.
    void run_job(const std::string& text, const std::optional<std::string>& key,
                 const std::shared_ptr<Creation>& creation) {
        px::WaitOptions options{
            .poll = poll_policy(),
            .on_progress = status_follower(),
            .on_created = [this, text, key, creation](
                              const px::Job& job) { created(job.id, job.status_text, text, key, *creation); },
            .idempotency_key = key,
            .label = key.value_or("")};
        spawn_run(client_.run(arguments_.api.sonar_request(text), std::move(options)), key, creation);
    }

    /// --api agent: as `run_job`, with a background response. Abandoning the wait at shutdown leaves the
    /// response running (cancel_on_abandon stays off): a restart with --ledger, or a rerun of the
    /// client, could still want it.
    void run_response(const std::string& text, const std::optional<std::string>& key,
                      const std::shared_ptr<Creation>& creation) {
        px::ResponseWaitOptions options{.poll = poll_policy(),
                                        .on_progress = status_follower(),
                                        .on_created =
                                            [this, text, key, creation](const px::Response& response) {
                                                created(response.id, response.status_text, text, key,
                                                        *creation);
                                            },
                                        .label = key.value_or("")};
        spawn_run(client_.run_response(arguments_.api.agent_request(text), std::move(options)), key,
                  creation);
    }

    /// Starts a question's run (`run` or `run_response`), cancellable at shutdown; its outcome goes to
    /// the table.
    template <class Item>
    void spawn_run(asio::awaitable<px::expected<Item, px::Error>> run, const std::optional<std::string>& key,
                   const std::shared_ptr<Creation>& creation) {
        const auto cancel = cancellations_.add();
        asio::co_spawn(
            io_, std::move(run),
            asio::bind_cancellation_slot(
                cancel->slot(), [this, key, creation, cancel](std::exception_ptr thrown,
                                                              px::expected<Item, px::Error> result) {
                    // Removed after this handler returns: the signal must outlive the
                    // operation's use of its slot.
                    asio::post(io_, [this, cancel] { cancellations_.remove(cancel); });
                    --in_flight_;
                    if (thrown) {
                        report_exception(thrown);
                        result = px::unexpected(px::Error{.message = "internal error"});
                    }
                    if (!creation->id) {
                        not_created(key, *creation, result.error());
                    } else if constexpr (std::is_same_v<Item, px::Response>) {
                        finish_response(*creation->id, result);
                    } else {
                        finish(*creation->id, result);
                    }
                }));
    }

    /// A run that ended before its create was answered: its POST says why, and the key may be used again.
    void not_created(const std::optional<std::string>& key, Creation& creation, const px::Error& error) {
        if (key) {
            keys_.erase(*key);
        }
        creation.fail(error);
    }

    /// Fleet: a key that entries of the shared ledger carry (the latest counts): the job it made, or 409
    /// while its create is under way somewhere; nothing when no job came of it, so it may be run again.
    std::optional<Response> known_to_fleet(const std::vector<px::LedgerEntry>& entries) const {
        if (entries.empty()) {
            return std::nullopt;
        }
        const px::LedgerEntry& latest = entries.back();
        if (!latest.job_id.empty()) {
            return json_response(http::status::accepted,
                                 {{"id", latest.job_id}, {"status", describe(latest).status}});
        }
        if (px::is_unfinished(latest.state)) {
            Response response = error_response(
                http::status::conflict,
                "a question with this Idempotency-Key is being created by a replica of the fleet; repeat the "
                "request shortly");
            response.set(http::field::retry_after, "1");
            return response;
        }
        return std::nullopt;
    }

    /// Fleet: GET of an id this replica does not follow, answered from the shared ledger as it stands.
    asio::awaitable<Response> get_fleet_question(std::string id) {
        px::LedgerQuery by_job;
        by_job.job_id = id;
        auto found = co_await fleet_->find(std::move(by_job));
        if (!found) {
            co_return ledger_unavailable(found.error());
        }
        if (found->empty()) {
            co_return error_response(http::status::not_found, "no question with id " + id);
        }
        co_return render(id, describe(found->back()));
    }

    static Response ledger_unavailable(const px::Error& error) {
        Response response = error_response(http::status::service_unavailable,
                                           "the fleet's ledger cannot be read: " + error.message);
        response.set(http::field::retry_after, "1");
        return response;
    }

    /// What GET shows of a ledger entry.
    static Question describe(const px::LedgerEntry& entry) {
        Question question{.text = recorded_question(entry),
                          .status = entry.status.empty() ? std::string("running") : entry.status};
        if (entry.state == px::EntryState::dropped ||
            (entry.state == px::EntryState::failed && entry.result.empty())) {
            question.status = "ERROR";
            question.error = entry.error;
        } else if (entry.state == px::EntryState::completed || entry.state == px::EntryState::failed) {
            if (entry.api == px::LedgerApi::agent) {
                settle_response(question, examples::recorded_response(entry));
            } else {
                settle(question, examples::recorded_job(entry));
            }
        }
        return question;
    }

    Response get_question(const std::string& id) const {
        const auto it = questions_.find(id);
        if (it == questions_.end()) {
            return error_response(http::status::not_found, "no question with id " + id);
        }
        return render(id, it->second);
    }

    static Response render(const std::string& id, const Question& question) {
        json::object body{{"id", id}, {"status", question.status}, {"question", question.text}};
        if (question.answer) {
            body["answer"] = *question.answer;
        }
        if (question.error) {
            body["error"] = *question.error;
        }
        return json_response(http::status::ok, body);
    }

    void finish_response(const std::string& id, const px::expected<px::Response, px::Error>& result) {
        if (forget_taken_over(id, result)) {
            return;
        }
        settle_response(questions_[id], result);
        remember_finished(id);
    }

    static void settle_response(Question& question, const px::expected<px::Response, px::Error>& result) {
        if (result) {
            question.status = result->status_text;
            if (result->status == px::ResponseStatus::requires_action) {
                // No function tools are offered, so only a model with tools of its own gets here.
                question.error = "the model called function tools, which this service does not offer";
            } else {
                question.answer = examples::answer_of(*result);  // completed, or incomplete: cut short
            }
        } else if (const px::Error& error = result.error();
                   error.response && (error.kind == px::ErrorKind::job_failed ||
                                      error.kind == px::ErrorKind::response_cancelled)) {
            question.status = error.response->status_text;  // "failed" or "cancelled"
            question.error = error.api_message.empty() ? error.message : error.api_message;
        } else {
            question.status = "ERROR";
            question.error = px::to_string(error);
        }
    }

    void finish(const std::string& id, const px::expected<px::Job, px::Error>& result) {
        if (forget_taken_over(id, result)) {
            return;
        }
        settle(questions_[id], result);
        remember_finished(id);
    }

    /// Fleet: a run whose entry another replica took over is that replica's to report; this one forgets
    /// it, and answers GET for it from the shared ledger.
    template <class Item>
    bool forget_taken_over(const std::string& id, const px::expected<Item, px::Error>& result) {
        if (result || result.error().kind != px::ErrorKind::taken_over) {
            return false;
        }
        std::cerr << "service: " << result.error().message << "\n";
        if (const auto question = questions_.find(id); question != questions_.end()) {
            if (question->second.key) {
                keys_.erase(*question->second.key);
            }
            questions_.erase(question);
        }
        return true;
    }

    static void settle(Question& question, const px::expected<px::Job, px::Error>& result) {
        if (result) {
            question.status = result->status_text;
            question.answer = examples::answer_of(*result);
        } else if (result.error().kind == px::ErrorKind::job_failed) {
            question.status = "FAILED";
            question.error = result.error().api_message;
        } else {
            // The job may still end on the API; this service just stopped following it.
            question.status = "ERROR";
            question.error = px::to_string(result.error());
        }
    }

    /// A resumed run's id in the table, where a run created again after a restart is added; none when
    /// the create failed once more, and nothing can be shown for it.
    std::optional<std::string> resumed(const px::LedgerEntry& entry, const std::string& id) {
        if (id.empty()) {
            std::cerr << "service: a create sent again after a restart failed; ledger entry " << entry.id
                      << "\n";
            return std::nullopt;
        }
        if (!questions_.contains(id)) {
            questions_[id] = Question{.text = recorded_question(entry),
                                      .status = "running",
                                      .key = entry.label.empty() ? std::nullopt : std::optional(entry.label)};
        }
        return id;
    }

    /// A question that ended without anything from the API to show, or that is no longer followed.
    void give_up(const std::string& id, const std::string& why) {
        if (const auto question = questions_.find(id); question != questions_.end()) {
            question->second.status = "ERROR";
            question->second.error = why;
            remember_finished(id);
        }
    }

    /// Keeps the last --keep-finished finished questions; an older one is forgotten, with its key.
    void remember_finished(const std::string& id) {
        finished_.push_back(id);
        while (finished_.size() > arguments_.keep_finished) {
            if (const auto old = questions_.find(finished_.front()); old != questions_.end()) {
                if (old->second.key) {
                    keys_.erase(*old->second.key);
                }
                questions_.erase(old);
            }
            finished_.pop_front();
        }
    }

    asio::io_context& io_;
    px::Client& client_;
    const Arguments& arguments_;
    const std::optional<BearerToken> token_;
    tcp::acceptor acceptor_;
    std::map<std::string, Question> questions_;
    /// The id each Idempotency-Key made, or none while its create is under way.
    std::map<std::string, std::optional<std::string>> keys_;
    std::deque<std::string> finished_;
    std::set<beast::tcp_stream*> connections_;
    Cancellations cancellations_;
    std::shared_ptr<px::PostgresLedger> fleet_{};
    asio::steady_timer takeover_timer_{io_};
    std::size_t in_flight_ = 0;
    bool accepting_ = false;
    bool stopping_ = false;
};

}  // namespace

int main(int argc, char** argv) {
    const auto arguments = parse_arguments(argc, argv);
    if (!arguments) {
        std::cerr << "run 'service --help' for usage\n";
        return usage_error;
    }
    const auto endpoint = parse_endpoint(arguments->listen);
    if (!endpoint) {
        std::cerr << "service: --listen takes ADDRESS:PORT, e.g. 127.0.0.1:8080 or [::1]:0, not '"
                  << arguments->listen << "'\n";
        return usage_error;
    }
    auto token = BearerToken::configure(arguments->token_file);
    if (!token) {
        std::cerr << "service: " << token.error() << "\n";
        return usage_error;
    }
    if (!*token && !loopback(endpoint->address())) {
        std::cerr << "service: refusing to listen on " << arguments->listen
                  << " without a token: anyone who reaches it could spend the account's money. Put a token "
                     "in a file readable only by the service and pass --token-file FILE, or set "
                     "PERPLEXITY_SERVICE_TOKEN; callers then send 'Authorization: Bearer TOKEN'. Only "
                     "127.0.0.0/8 and ::1 may be listened on without a token.\n";
        return usage_error;
    }
    px::ClientOptions options = arguments->connection.client_options();
    options.create_requests_per_minute = arguments->creates_per_minute;
    std::vector<px::LedgerEntry> entries;
    asio::io_context io;
    std::shared_ptr<px::PostgresLedger> fleet;
    if (is_postgres(arguments->ledger)) {
        auto opened = open_fleet_ledger(io, *arguments);
        if (!opened) {
            // The library's Errors name the database without the password; the URI is never printed.
            std::cerr << "service: " << px::to_string(opened.error()) << "\n";
            return start_failed;
        }
        fleet = *opened;
        options.ledger = fleet;
        if (arguments->creates_per_minute > 0) {
            options.shared_create_pace = fleet->create_pace(arguments->creates_per_minute);
        }
        std::cerr << "service: replica \"" << fleet->replica() << "\" of the fleet on " << fleet->target()
                  << "\n";
    } else if (!arguments->ledger.empty()) {
        auto ledger = px::SqliteLedger::open(arguments->ledger);
        if (!ledger) {
            std::cerr << "service: " << px::to_string(ledger.error()) << "\n";
            return start_failed;
        }
        auto found = (*ledger)->find_now({});
        if (!found) {
            std::cerr << "service: " << px::to_string(found.error()) << "\n";
            return start_failed;
        }
        entries = std::move(*found);
        options.ledger = std::move(*ledger);
    }

    px::Client client(io.get_executor(), options);
    if (!examples::usable("service", client)) {
        return usage_error;
    }
    if (*token) {
        std::cerr << "service: every request but GET /healthz needs the bearer token\n";
    }
    Service service(io, client, *arguments, std::move(*token));
    // Before listening: a script may signal as soon as it has read the first line.
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](boost::system::error_code ec, int) {
        if (!ec) {
            std::cerr << "service: stopping\n";
            service.stop();
            if (fleet) {
                // Ends the lease (once the runs' last records are in), so that the other replicas take
                // this one's unfinished jobs over at once instead of a lease later.
                asio::co_spawn(io, fleet->close(), [](std::exception_ptr, std::optional<px::Error> failed) {
                    if (failed) {
                        std::cerr << "service: " << px::to_string(*failed) << "\n";
                    }
                });
            }
        }
    });
    try {
        const tcp::endpoint bound = service.listen(*endpoint);
        const auto address = bound.address();
        std::cout << "listening on http://"
                  << (address.is_v6() ? "[" + address.to_string() + "]" : address.to_string()) << ":"
                  << bound.port() << std::endl;
    } catch (const boost::system::system_error& e) {
        std::cerr << "service: cannot listen on " << arguments->listen << ": " << e.code().message() << "\n";
        return start_failed;
    }
    if (fleet) {
        service.join_fleet(fleet, arguments->lease);
        service.resume();
    } else if (options.ledger) {
        service.load(entries);
        service.resume();
    }
    service.start_accepting();
    io.run();
    return stopped;
}
