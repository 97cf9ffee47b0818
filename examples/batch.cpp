// batch: answers a file of questions through one Client, a few jobs at a time, and can be stopped and
// rerun at any point without creating (and paying for) a job twice.
//
//   batch --in questions.jsonl --out answers.jsonl [--journal answers.jsonl.journal] [--concurrency 4]
//
// How the resume works: before a question's create is sent, the journal gets a line with the question's
// id and the idempotency key the create will carry; once the API answers, another line with the job id.
// Each line is one write() followed by fsync(). A rerun skips the ids already in --out, waits on the
// journaled job ids with Client::wait, and re-runs a question journaled without a job id with the same
// key, so the API hands back the job it may already have created.
//
// With --api agent each question is an Agent API background response (Client::run_response, and
// Client::wait_response on a rerun). That API has no idempotency key and no list, so the resume is as
// good as it can be and no better: the journal gets a line before the create is sent and one with the
// response id once the API answers (or one saying no response was made, when the create provably never
// made one). A rerun waits on the journaled response ids; a question whose create was sent but whose
// answer never arrived is not sent again, since a response may exist that nobody can find, and resending
// would pay twice. It is left unfinished and named, for the user to decide.
#include "example_support.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

namespace asio = boost::asio;
namespace json = boost::json;
namespace px = perplexity;

namespace {

enum ExitCode {
    all_completed = 0,
    some_failed = 1,
    usage_error = 2,
    unfinished = 3,
    deadline_passed = 4,
    interrupted = 5
};

constexpr std::string_view usage = R"(usage: batch --in FILE --out FILE [options]

Answers every question of a JSONL file (one {"id": "...", "question": "..."} per line) as async jobs,
at most --concurrency at a time through one client, and appends one JSON line per question to --out:
  {"id", "job_id", "status": "COMPLETED", "answer"}     the job completed
  {"id", "job_id", "status": "FAILED", "error"}         the job failed
  {"id", "job_id", "status": "ERROR", "error"}          the API refused the question for good (a 4xx)
Other errors (network, timeouts, rate limits, server errors) write no line: the question is left for
the next run.

Rerun with the same files after a crash, Ctrl-C or an error: questions already in --out are skipped,
jobs already created are waited on again, and no question is ever created twice (the journal keeps
each create's idempotency key, written before the create is sent).

With --api agent, each question is an Agent API background response, and the lines carry
"response_id" instead of "job_id"; besides COMPLETED, FAILED and ERROR, a status can be CANCELLED
(cancelled on the server by someone else), INCOMPLETE (cut short; the partial "answer" is kept) or
REQUIRES_ACTION (the model called a function tool; none is offered, so only a model with tools of its
own can), each counted as not completed. That API has no idempotency key: a rerun waits on the
journaled response ids, but a question whose create was sent without its answer arriving (a crash, or
Ctrl-C, at that moment) is not sent again, since it may have made a response that cannot be found; it
is named and left unfinished (remove its lines from the journal to send it again, at the risk of paying
twice). A journal is tied to the --api it was written with.

options:
  --in FILE              the questions (required)
  --out FILE             where answers are appended (required)
  --journal FILE         the resume journal (default: the --out file name plus ".journal")
  --concurrency N        questions in progress at once (default 4)
  --creates-per-minute N space creates evenly at this rate, e.g. your usage tier's limit
                         (default 0: no spacing; a 429 still pauses all creates)
  --deadline SECONDS     for the whole batch: stop waiting when it passes; unfinished jobs keep
                         running and the next run picks them up (default: none; each job's wait
                         still ends after 30 minutes)
  --api sonar|agent      which API to ask (default: sonar)
  --model NAME           model to use (sonar default: sonar-deep-research; with --api agent, a
                         provider-prefixed model such as perplexity/sonar, used instead of the preset)
  --preset NAME          --api agent: the preset to run (default: medium)
)";

constexpr std::string_view usage_tail = R"(  -h, --help             show this help

Progress goes to stderr: a bar on a terminal, one line per event otherwise.

exit codes: 0 every question completed, 1 every question has a line but some FAILED or ERROR,
            2 usage, configuration or input error, 3 some questions unfinished after errors
            (rerun to resume), 4 the deadline passed with questions unfinished, 5 interrupted
            (SIGINT or SIGTERM; rerun to resume)
)";

struct Arguments {
    examples::ConnectionFlags connection{};
    std::string in{};
    std::string out{};
    std::string journal{};
    std::size_t concurrency = 4;
    unsigned creates_per_minute = 0;
    std::optional<std::chrono::seconds> deadline{};
    examples::ApiFlags api{};
};

std::optional<Arguments> parse_arguments(int argc, char** argv) {
    Arguments arguments;
    examples::Flags flags("batch", argc, argv);
    while (flags.next()) {
        const std::string_view word = flags.word();
        bool bad = false;
        if (examples::parse_common_flag(flags, arguments.connection, usage, usage_tail, all_completed, bad)) {
            // handled
        } else if (word == "--in" || word == "--out" || word == "--journal") {
            const auto value = flags.value();
            bad = !value;
            if (value) {
                (word == "--in"    ? arguments.in
                 : word == "--out" ? arguments.out
                                   : arguments.journal) = *value;
            }
        } else if (arguments.api.parse(flags, bad)) {
            // handled
        } else if (word == "--concurrency") {
            const auto n = flags.number(1, 10000);
            bad = !n;
            arguments.concurrency = n.value_or(1);
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
    if (arguments.in.empty() || arguments.out.empty()) {
        std::cerr << "batch: --in and --out are required\n";
        return std::nullopt;
    }
    if (!arguments.api.consistent("batch")) {
        return std::nullopt;
    }
    if (arguments.journal.empty()) {
        arguments.journal = arguments.out + ".journal";
    }
    return arguments;
}

struct Question {
    std::string id{};
    std::string text{};
};

struct JournalEntry {
    /// Written by --api agent: `job_id` is then a response id, and there is no key.
    bool agent = false;
    std::string idempotency_key{};
    std::optional<std::string> job_id{};
    /// --api agent: the last create failed without making a response, so it may be sent again.
    bool no_response = false;
};

/// A problem with one of the files, already worded for the user.
struct InputError {
    std::string message{};
};

std::string where(const std::string& file, std::size_t line) {
    return file + ":" + std::to_string(line);
}

/// The complete lines of a file we append to (none when it does not exist). A crash can leave a torn
/// last line; it is cut off here, so that appending goes on from a clean line end.
std::vector<std::string> read_lines_repairing(const std::string& file) {
    std::vector<std::string> lines;
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        return lines;
    }
    std::stringstream buffer;
    buffer << in.rdbuf();
    const std::string content = buffer.str();
    const std::size_t complete = content.rfind('\n') == std::string::npos ? 0 : content.rfind('\n') + 1;
    if (complete != content.size()) {
        std::cerr << "batch: " << file << ": removing an incomplete last line (left by a crash)\n";
        std::error_code ec;
        std::filesystem::resize_file(file, complete, ec);
        if (ec) {
            throw InputError{file + ": cannot remove the incomplete last line: " + ec.message()};
        }
    }
    std::size_t start = 0;
    while (start < complete) {
        const std::size_t end = content.find('\n', start);
        lines.push_back(content.substr(start, end - start));
        start = end + 1;
    }
    return lines;
}

/// The member `name` of a JSON line as a non-empty string, or an InputError naming the line.
std::string string_member(const json::object& object, std::string_view name, const std::string& at) {
    const json::value* value = object.if_contains(name);
    if (value == nullptr || !value->is_string() || value->as_string().empty()) {
        throw InputError{at + ": \"" + std::string(name) + "\" must be a non-empty string"};
    }
    return std::string(value->as_string());
}

json::object parse_line(const std::string& line, const std::string& at) {
    boost::system::error_code ec;
    json::value value = json::parse(line, ec);
    if (ec) {
        throw InputError{at + ": not valid JSON (" + ec.message() + ")"};
    }
    if (!value.is_object()) {
        throw InputError{at + ": expected a JSON object"};
    }
    return std::move(value.as_object());
}

std::vector<Question> read_questions(const std::string& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        throw InputError{file + ": cannot open: " + std::strerror(errno)};
    }
    std::vector<Question> questions;
    std::map<std::string, std::size_t> line_of_id;
    std::string line;
    for (std::size_t number = 1; std::getline(in, line); ++number) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) {
            continue;
        }
        const std::string at = where(file, number);
        const json::object object = parse_line(line, at);
        Question question{string_member(object, "id", at), string_member(object, "question", at)};
        if (const auto [it, fresh] = line_of_id.emplace(question.id, number); !fresh) {
            throw InputError{at + ": duplicate id \"" + question.id + "\" (first on line " +
                             std::to_string(it->second) + ")"};
        }
        questions.push_back(std::move(question));
    }
    return questions;
}

/// The ids already answered, with their status.
std::map<std::string, std::string> read_answered(const std::string& file) {
    std::map<std::string, std::string> answered;
    std::size_t number = 0;
    for (const std::string& line : read_lines_repairing(file)) {
        const std::string at = where(file, ++number);
        const json::object object = parse_line(line, at);
        answered[string_member(object, "id", at)] = string_member(object, "status", at);
    }
    return answered;
}

/// The journal's state per question id: each line replaces what the earlier lines said about its id.
/// Sonar lines are {"id", "idempotency_key"[, "job_id"]}; Agent API lines {"id", "api": "agent"[,
/// "response_id" | "no_response": true]}. A journal of the other API than `agent` says is refused: its
/// ids would be polled on the wrong API.
std::map<std::string, JournalEntry> read_journal(const std::string& file, bool agent) {
    std::map<std::string, JournalEntry> entries;
    std::size_t number = 0;
    for (const std::string& line : read_lines_repairing(file)) {
        const std::string at = where(file, ++number);
        const json::object object = parse_line(line, at);
        JournalEntry& entry = entries[string_member(object, "id", at)];
        entry.agent = object.contains("api") && string_member(object, "api", at) == "agent";
        if (entry.agent != agent) {
            throw InputError{at + ": written by a run with --api " + (entry.agent ? "agent" : "sonar") +
                             "; rerun with that --api, or use another --journal and --out"};
        }
        entry.job_id.reset();
        if (entry.agent) {
            if (object.contains("response_id")) {
                entry.job_id = string_member(object, "response_id", at);
            }
            const json::value* no_response = object.if_contains("no_response");
            entry.no_response = no_response != nullptr && no_response->is_bool() && no_response->as_bool();
            continue;
        }
        entry.idempotency_key = string_member(object, "idempotency_key", at);
        if (object.contains("job_id")) {
            entry.job_id = string_member(object, "job_id", at);
        }
    }
    return entries;
}

/// A file that only grows by whole lines: each line is a single write() (O_APPEND), then fsync(), so
/// after a crash the file ends with complete lines, perhaps followed by one torn line that the next
/// run cuts off.
class LineFile {
  public:
    explicit LineFile(const std::string& path) : path_(path) {
        fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd_ < 0) {
            throw InputError{path + ": cannot open for appending: " + std::strerror(errno)};
        }
    }

    /// Two runs appending to the same files would both create the questions neither has answered yet.
    void lock_exclusively() {
        if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
            throw InputError{path_ + ": " +
                             (errno == EWOULDBLOCK ? std::string("in use by another batch run")
                                                   : std::string("cannot lock: ") + std::strerror(errno))};
        }
    }
    LineFile(const LineFile&) = delete;
    LineFile& operator=(const LineFile&) = delete;
    ~LineFile() { ::close(fd_); }

    /// Appends `object` as one line; false (after saying why) when it may not be on disk.
    bool append(const json::object& object) {
        const std::string line = json::serialize(object) + "\n";
        const ssize_t written = ::write(fd_, line.data(), line.size());
        if (written != static_cast<ssize_t>(line.size()) || ::fsync(fd_) != 0) {
            std::cerr << "batch: " << path_ << ": write failed: " << std::strerror(errno) << "\n";
            return false;
        }
        return true;
    }

  private:
    std::string path_;
    int fd_ = -1;
};

/// Progress on stderr: a bar redrawn in place on a terminal, plain lines otherwise (logs, pipes).
class Progress {
  public:
    Progress(std::size_t total, std::size_t already_done, std::size_t already_failed)
        : terminal_(::isatty(STDERR_FILENO) == 1),
          total_(total),
          done_(already_done),
          failed_(already_failed) {}

    void started() {
        ++running_;
        redraw();
    }
    void finished(bool answered, bool failed) {
        --running_;
        done_ += answered ? 1 : 0;
        failed_ += failed ? 1 : 0;
        redraw();
    }
    /// An event worth a line of its own, above the bar on a terminal.
    void say(const std::string& text) {
        if (terminal_) {
            std::cerr << "\r\033[K";
        }
        std::cerr << "batch: " << text;
        if (!terminal_) {
            std::cerr << " [" << done_ << "/" << total_ << " done]";
        }
        std::cerr << "\n";
        redraw();
    }
    void close() {
        if (terminal_) {
            std::cerr << "\n";
        }
    }

  private:
    void redraw() {
        if (!terminal_) {
            return;
        }
        constexpr std::size_t width = 30;
        const std::size_t filled = total_ == 0 ? width : done_ * width / total_;
        std::cerr << "\r\033[K[" << std::string(filled, '#') << std::string(width - filled, '-') << "] "
                  << done_ << "/" << total_ << " done, " << running_ << " running";
        if (failed_ != 0) {
            std::cerr << ", " << failed_ << " failed";
        }
        std::cerr << std::flush;
    }

    bool terminal_;
    std::size_t total_;
    std::size_t done_;
    std::size_t failed_;
    std::size_t running_ = 0;
};

/// Is this error final for the question? The API refused the request itself: asking again with the same
/// request cannot help. (Authentication and rate limit statuses are not: they are fixed by the user or by
/// time.)
bool refused_for_good(const px::Error& error) {
    if (error.kind == px::ErrorKind::invalid_argument) {
        return true;
    }
    const int status = error.http_status;
    return error.kind == px::ErrorKind::http_status && status >= 400 && status < 500 &&
           !px::is_retryable(error) && status != 401 && status != 403;
}

class Batch {
  public:
    Batch(px::Client& client, const Arguments& arguments, std::vector<Question> pending,
          std::map<std::string, JournalEntry> journal_entries, LineFile& journal, LineFile& out,
          Progress& progress, std::size_t failed_before)
        : client_(client),
          arguments_(arguments),
          pending_(std::move(pending)),
          entries_(std::move(journal_entries)),
          journal_(journal),
          out_(out),
          progress_(progress),
          slots_(std::min(arguments.concurrency, pending_.size())),
          failed_before_(failed_before) {
        if (arguments.deadline) {
            deadline_ = std::chrono::steady_clock::now() + *arguments.deadline;
        }
    }

    std::size_t workers() const { return slots_.size(); }

    /// Takes questions one after another until none are left or the batch stops.
    asio::awaitable<void> worker(std::size_t slot) {
        while (!stopping_ && next_ < pending_.size()) {
            const Question& question = pending_[next_++];
            progress_.started();
            std::string news;
            // Not `agent ? co_await a : co_await b`: GCC miscompiles a co_await inside a conditional
            // expression.
            Outcome outcome = Outcome::unfinished;
            if (arguments_.api.agent) {
                outcome = co_await answer_agent(question, slots_[slot], news);
            } else {
                outcome = co_await answer(question, slots_[slot], news);
            }
            progress_.finished(outcome == Outcome::answered || outcome == Outcome::failed,
                               outcome == Outcome::failed);
            if (!news.empty()) {
                progress_.say(question.id + ": " + news);
            }
        }
    }

    /// Ctrl-C: no new questions, and every operation in progress is cancelled. What was created stays in
    /// the journal.
    void interrupt() {
        stopping_ = interrupted_ = true;
        for (auto& signal : slots_) {
            signal.emit(asio::cancellation_type::terminal);
        }
    }

    int exit_code() const {
        if (interrupted_) {
            return interrupted;
        }
        if (deadline_unfinished_ != 0) {
            return deadline_passed;
        }
        if (error_unfinished_ != 0 || stopping_) {
            return unfinished;
        }
        return failed_ + failed_before_ != 0 ? some_failed : all_completed;
    }

    std::string summary() const {
        return std::to_string(completed_) + " completed, " + std::to_string(failed_) + " failed, " +
               std::to_string(pending_.size() - completed_ - failed_) + " unfinished";
    }

  private:
    enum class Outcome { answered, failed, unfinished };

    /// The poll policy of one question's wait, whose deadline is what is left of the batch's; none when
    /// that has passed already.
    std::optional<px::PollPolicy> poll_policy() const {
        px::PollPolicy poll = client_.options().poll;
        if (deadline_) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                *deadline_ - std::chrono::steady_clock::now());
            if (left <= std::chrono::milliseconds(0)) {
                return std::nullopt;
            }
            poll.deadline = left;
        }
        return poll;
    }

    asio::awaitable<Outcome> answer(const Question& question, asio::cancellation_signal& cancel,
                                    std::string& news) {
        px::WaitOptions options{.poll = poll_policy()};
        if (!options.poll) {
            ++deadline_unfinished_;
            co_return Outcome::unfinished;
        }
        auto entry = entries_.find(question.id);
        px::expected<px::Job, px::Error> result = px::unexpected(px::Error{});
        if (entry != entries_.end() && entry->second.job_id) {
            const std::string job_id = *entry->second.job_id;
            progress_.say(question.id + ": resuming job " + job_id);
            result = co_await cancellable(client_.wait(job_id, std::move(options)), cancel);
        } else {
            if (entry == entries_.end()) {
                // The key must be on disk before the create can reach the API: a crash right after the
                // send then still finds it, and the rerun's create returns the same job.
                JournalEntry fresh{.idempotency_key = px::make_idempotency_key()};
                if (!journal_.append({{"id", question.id}, {"idempotency_key", fresh.idempotency_key}})) {
                    stopping_ = true;
                    ++error_unfinished_;
                    co_return Outcome::unfinished;
                }
                entry = entries_.emplace(question.id, std::move(fresh)).first;
            } else {
                progress_.say(question.id + ": sending again with its journaled idempotency key");
            }
            const std::string key = entry->second.idempotency_key;
            options.idempotency_key = key;
            options.on_created = [this, &question, key](const px::Job& job) {
                entries_[question.id].job_id = job.id;
                // Should this line be lost, the rerun sends the create again with the key, which answers
                // with this same job.
                journal_.append({{"id", question.id}, {"idempotency_key", key}, {"job_id", job.id}});
                progress_.say(question.id + ": created job " + job.id);
            };
            result = co_await cancellable(
                client_.run(arguments_.api.sonar_request(question.text), std::move(options)), cancel);
        }
        co_return record(question, result, news);
    }

    /// --api agent: as `answer`, with a background response. Without an idempotency key, a create is
    /// sent again only when the journal says the last one made no response.
    asio::awaitable<Outcome> answer_agent(const Question& question, asio::cancellation_signal& cancel,
                                          std::string& news) {
        px::ResponseWaitOptions options{.poll = poll_policy()};
        if (!options.poll) {
            ++deadline_unfinished_;
            co_return Outcome::unfinished;
        }
        const auto entry = entries_.find(question.id);
        px::expected<px::Response, px::Error> result = px::unexpected(px::Error{});
        if (entry != entries_.end() && entry->second.job_id) {
            const std::string response_id = *entry->second.job_id;
            progress_.say(question.id + ": resuming response " + response_id);
            result = co_await cancellable(client_.wait_response(response_id, std::move(options)), cancel);
        } else if (entry != entries_.end() && !entry->second.no_response) {
            ++error_unfinished_;
            news =
                "not sent again: its create was sent but its answer never arrived, so a response may exist "
                "that cannot be found (the Agent API has no idempotency key and no list); remove its "
                "lines from " +
                arguments_.journal + " to send it anyway, at the risk of paying twice";
            co_return Outcome::unfinished;
        } else {
            if (entry != entries_.end()) {
                progress_.say(question.id + ": sending again: its last create made no response");
            }
            // On disk before the create can reach the API: a rerun then knows that a response may exist.
            if (!journal_.append({{"id", question.id}, {"api", "agent"}})) {
                stopping_ = true;
                ++error_unfinished_;
                co_return Outcome::unfinished;
            }
            entries_[question.id] = JournalEntry{.agent = true};
            options.on_created = [this, &question](const px::Response& response) {
                entries_[question.id].job_id = response.id;
                journal_.append({{"id", question.id}, {"api", "agent"}, {"response_id", response.id}});
                progress_.say(question.id + ": created response " + response.id);
            };
            result = co_await cancellable(
                client_.run_response(arguments_.api.agent_request(question.text), std::move(options)),
                cancel);
            if (!result && !result.error().job_id && !result.error().job_may_exist) {
                // The create provably made no response: a rerun may send it again.
                entries_[question.id].no_response = true;
                journal_.append({{"id", question.id}, {"api", "agent"}, {"no_response", true}});
            }
        }
        co_return record_agent(question, result, news);
    }

    /// Runs `operation` with its own cancellation slot, which interrupt() triggers.
    template <class Result>
    asio::awaitable<px::expected<Result, px::Error>> cancellable(
        asio::awaitable<px::expected<Result, px::Error>> operation, asio::cancellation_signal& cancel) {
        co_return co_await asio::co_spawn(client_.get_executor(), std::move(operation),
                                          asio::bind_cancellation_slot(cancel.slot(), asio::use_awaitable));
    }

    Outcome record(const Question& question, const px::expected<px::Job, px::Error>& result,
                   std::string& news) {
        json::object line{{"id", question.id}};
        if (result) {
            line["job_id"] = result->id;
            line["status"] = "COMPLETED";
            line["answer"] = examples::answer_of(*result);
            news = "COMPLETED";
            return write_answer(line, Outcome::answered);
        }
        const px::Error& error = result.error();
        line["job_id"] = error.job_id ? json::value(*error.job_id) : json::value(nullptr);
        if (error.kind == px::ErrorKind::job_failed) {
            line["status"] = "FAILED";
            line["error"] = error.api_message.empty() ? "(no error message)" : error.api_message;
            news = "FAILED";
            return write_answer(line, Outcome::failed);
        }
        return record_error(line, error, news);
    }

    Outcome record_agent(const Question& question, const px::expected<px::Response, px::Error>& result,
                         std::string& news) {
        json::object line{{"id", question.id}};
        if (result) {
            line["response_id"] = result->id;
            switch (result->status) {
                case px::ResponseStatus::completed:
                    line["status"] = news = "COMPLETED";
                    line["answer"] = examples::answer_of(*result);
                    return write_answer(line, Outcome::answered);
                case px::ResponseStatus::incomplete:
                    line["status"] = news = "INCOMPLETE";
                    line["answer"] = examples::answer_of(*result);
                    return write_answer(line, Outcome::failed);
                default: {
                    // requires_action: the model called function tools, which this program does not offer.
                    std::string calls;
                    for (const px::FunctionCall* call : result->function_calls()) {
                        calls += (calls.empty() ? "" : ", ") + call->name;
                    }
                    line["status"] = news = "REQUIRES_ACTION";
                    line["error"] = "the response ended " + result->status_text +
                                    "; function calls: " + (calls.empty() ? "none listed" : calls);
                    return write_answer(line, Outcome::failed);
                }
            }
        }
        const px::Error& error = result.error();
        line["response_id"] = error.job_id ? json::value(*error.job_id) : json::value(nullptr);
        if (error.kind == px::ErrorKind::job_failed || error.kind == px::ErrorKind::response_cancelled) {
            line["status"] = news = error.kind == px::ErrorKind::job_failed ? "FAILED" : "CANCELLED";
            line["error"] = error.api_message.empty() ? error.message : error.api_message;
            return write_answer(line, Outcome::failed);
        }
        return record_error(line, error, news);
    }

    /// What both APIs' errors other than a failed (or cancelled) run come to.
    Outcome record_error(json::object& line, const px::Error& error, std::string& news) {
        if (refused_for_good(error)) {
            line["status"] = "ERROR";
            line["error"] = px::to_string(error);
            news = "ERROR: " + px::to_string(error);
            return write_answer(line, Outcome::failed);
        }
        if (error.kind == px::ErrorKind::wait_deadline) {
            ++deadline_unfinished_;
            news = "deadline passed; " + std::string(arguments_.api.agent ? "response " : "job ") +
                   error.job_id.value_or("?") + " left for the next run";
        } else if (error.kind != px::ErrorKind::cancelled) {
            ++error_unfinished_;
            news = "left for the next run after " + px::to_string(error);
        }
        return Outcome::unfinished;
    }

    Outcome write_answer(const json::object& line, Outcome outcome) {
        if (!out_.append(line)) {
            stopping_ = true;
            ++error_unfinished_;
            return Outcome::unfinished;
        }
        ++(outcome == Outcome::answered ? completed_ : failed_);
        return outcome;
    }

    px::Client& client_;
    const Arguments& arguments_;
    std::vector<Question> pending_;
    std::map<std::string, JournalEntry> entries_;
    LineFile& journal_;
    LineFile& out_;
    Progress& progress_;
    std::vector<asio::cancellation_signal> slots_;
    std::optional<std::chrono::steady_clock::time_point> deadline_{};
    std::size_t next_ = 0;
    std::size_t completed_ = 0;
    std::size_t failed_ = 0;
    std::size_t failed_before_ = 0;  // lines of earlier runs that are not COMPLETED
    std::size_t error_unfinished_ = 0;
    std::size_t deadline_unfinished_ = 0;
    bool stopping_ = false;
    bool interrupted_ = false;
};

}  // namespace

int main(int argc, char** argv) {
    const auto arguments = parse_arguments(argc, argv);
    if (!arguments) {
        std::cerr << "run 'batch --help' for usage\n";
        return usage_error;
    }
    px::ClientOptions options = arguments->connection.client_options();
    options.create_requests_per_minute = arguments->creates_per_minute;

    asio::io_context io;
    px::Client client(io.get_executor(), options);
    if (!examples::usable("batch", client)) {
        return usage_error;
    }

    std::vector<Question> pending;
    std::map<std::string, JournalEntry> journal_entries;
    std::size_t total = 0;
    std::size_t failed_before = 0;
    std::optional<LineFile> journal, out;
    try {
        std::vector<Question> questions = read_questions(arguments->in);
        total = questions.size();
        // Locked before anything is read, so that a second run cannot act on the same state.
        journal.emplace(arguments->journal);
        journal->lock_exclusively();
        out.emplace(arguments->out);
        const std::map<std::string, std::string> answered = read_answered(arguments->out);
        journal_entries = read_journal(arguments->journal, arguments->api.agent);
        for (Question& question : questions) {
            const auto it = answered.find(question.id);
            if (it == answered.end()) {
                pending.push_back(std::move(question));
            } else if (it->second != "COMPLETED") {
                ++failed_before;
            }
        }
    } catch (const InputError& error) {
        std::cerr << "batch: " << error.message << "\n";
        return usage_error;
    }

    Progress progress(total, total - pending.size(), failed_before);
    if (pending.size() != total) {
        progress.say(std::to_string(total - pending.size()) + " of " + std::to_string(total) +
                     " questions already answered in " + arguments->out);
    }
    Batch batch(client, *arguments, std::move(pending), std::move(journal_entries), *journal, *out, progress,
                failed_before);

    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](boost::system::error_code ec, int) {
        if (!ec) {
            progress.say("interrupted: cancelling; rerun to resume");
            batch.interrupt();
        }
    });
    std::size_t running = batch.workers();
    bool crashed = false;
    for (std::size_t slot = 0; slot < batch.workers(); ++slot) {
        asio::co_spawn(io, batch.worker(slot), [&](std::exception_ptr error) {
            if (error) {
                crashed = true;
                try {
                    std::rethrow_exception(error);
                } catch (const std::exception& e) {
                    progress.say(std::string("internal error: ") + e.what());
                }
                batch.interrupt();
            }
            if (--running == 0) {
                signals.cancel();
            }
        });
    }
    if (running == 0) {
        signals.cancel();
    }
    io.run();
    progress.close();
    std::cerr << "batch: " << batch.summary() << "\n";
    return crashed ? unfinished : batch.exit_code();
}
