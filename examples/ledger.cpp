// ledger: what a ledger file holds, for an operator: how many jobs are in flight, done, failed or stale,
// and which. It opens the file for reading only (SqliteLedgerOptions::read_only), so it works beside the
// batch or service that is writing it.
//
//   ledger FILE [--state STATE]... [--label LABEL] [--stale-after HOURS] [--json]
#include "example_support.hpp"

#include <perplexity/sqlite_ledger.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace px = perplexity;
namespace json = boost::json;

namespace {

constexpr int usage_error = 2;
constexpr int unreadable = 3;

constexpr const char* usage = R"(usage: ledger FILE [options]

Lists what a perplexity-async ledger (a batch --journal, a service --ledger) holds: a count per state,
then one line per entry, oldest first. Reads only: safe beside the program writing the ledger.

  --state STATE         only entries in this state: pending, running, completed, failed, dropped
                        (repeatable)
  --label LABEL         only entries with this label (a batch's question id, a service's key)
  --stale-after HOURS   an unfinished entry older than this is counted and marked as stale
                        (default 24: what Client::resume re-creates by default)
  --json                one JSON object per entry instead of the table (the request and result
                        JSON included)
  --help                this text

Exit status: 0 listed, 2 usage error, 3 the file could not be read as a ledger.
)";

struct Arguments {
    std::string file{};
    px::LedgerQuery query{};
    std::chrono::hours stale_after{24};
    bool json = false;
};

std::optional<Arguments> parse(int argc, char** argv) {
    Arguments arguments;
    examples::Flags flags("ledger", argc, argv);
    while (flags.next()) {
        const std::string_view word = flags.word();
        if (word == "--help") {
            std::cout << usage;
            std::exit(0);
        } else if (word == "--state") {
            const auto value = flags.value();
            if (!value) {
                return std::nullopt;
            }
            const auto state = px::entry_state_from_string(*value);
            if (!state) {
                flags.complain("--state takes pending, running, completed, failed or dropped, not '" +
                               *value + "'");
                return std::nullopt;
            }
            arguments.query.states.push_back(*state);
        } else if (word == "--label") {
            const auto value = flags.value();
            if (!value) {
                return std::nullopt;
            }
            arguments.query.label = *value;
        } else if (word == "--stale-after") {
            const auto hours = flags.number(0);
            if (!hours) {
                return std::nullopt;
            }
            arguments.stale_after = std::chrono::hours(*hours);
        } else if (word == "--json") {
            arguments.json = true;
        } else if (!word.starts_with("--") && arguments.file.empty()) {
            arguments.file = std::string(word);
        } else {
            flags.unknown();
            return std::nullopt;
        }
    }
    if (arguments.file.empty()) {
        std::cerr << "ledger: which file? (see --help)\n";
        return std::nullopt;
    }
    return arguments;
}

std::string age_of(std::chrono::system_clock::time_point since, std::chrono::system_clock::time_point now) {
    const auto minutes = std::chrono::duration_cast<std::chrono::minutes>(now - since).count();
    if (minutes < 120) {
        return std::to_string(minutes) + "m";
    }
    if (minutes < 48 * 60) {
        return std::to_string(minutes / 60) + "h";
    }
    return std::to_string(minutes / (24 * 60)) + "d";
}

std::string first_line(const std::string& text) {
    return text.substr(0, text.find('\n'));
}

json::object as_json(const px::LedgerEntry& entry, bool stale) {
    const auto millis = [](std::chrono::system_clock::time_point at) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
    };
    json::object line{{"id", entry.id},
                      {"api", px::to_string(entry.api)},
                      {"state", px::to_string(entry.state)},
                      {"stale", stale},
                      {"label", entry.label},
                      {"job_id", entry.job_id},
                      {"status", entry.status},
                      {"error", entry.error},
                      {"created_at_ms", millis(entry.created_at)},
                      {"updated_at_ms", millis(entry.updated_at)}};
    // The stored JSON texts are embedded as values when they parse (they always should), else as text.
    for (const auto& [name, text] :
         {std::pair{"request", &entry.request}, std::pair{"result", &entry.result}}) {
        boost::system::error_code ec;
        json::value parsed = text->empty() ? json::value(nullptr) : json::parse(*text, ec);
        line[name] = ec ? json::value(*text) : std::move(parsed);
    }
    return line;
}

}  // namespace

int main(int argc, char** argv) {
    const auto arguments = parse(argc, argv);
    if (!arguments) {
        return usage_error;
    }
    auto ledger = px::SqliteLedger::open(arguments->file, {.read_only = true});
    if (!ledger) {
        std::cerr << "ledger: " << px::to_string(ledger.error()) << "\n";
        return unreadable;
    }
    auto entries = (*ledger)->find_now(arguments->query);
    if (!entries) {
        std::cerr << "ledger: " << px::to_string(entries.error()) << "\n";
        return unreadable;
    }
    const auto now = std::chrono::system_clock::now();
    const auto is_stale = [&](const px::LedgerEntry& entry) {
        return px::is_unfinished(entry.state) && now - entry.created_at > arguments->stale_after;
    };
    if (arguments->json) {
        for (const px::LedgerEntry& entry : *entries) {
            std::cout << json::serialize(as_json(entry, is_stale(entry))) << '\n';
        }
        return 0;
    }
    std::map<std::string, std::size_t> counts;
    std::size_t stale = 0;
    for (const px::LedgerEntry& entry : *entries) {
        ++counts[px::to_string(entry.state)];
        stale += is_stale(entry);
    }
    std::cout << arguments->file << ": " << entries->size() << " entries";
    for (const char* state : {"pending", "running", "completed", "failed", "dropped"}) {
        std::cout << ", " << counts[state] << ' ' << state;
    }
    std::cout << " (" << stale << " stale: unfinished and older than " << arguments->stale_after.count()
              << "h)\n";
    for (const px::LedgerEntry& entry : *entries) {
        std::printf("%6lld  %-5s  %-9s%s  %-5s  %-20s  %-36s  %-12s  %s\n", static_cast<long long>(entry.id),
                    px::to_string(entry.api), px::to_string(entry.state), is_stale(entry) ? "*" : " ",
                    age_of(entry.created_at, now).c_str(), entry.label.c_str(),
                    entry.job_id.empty() ? "-" : entry.job_id.c_str(),
                    entry.status.empty() ? "-" : entry.status.c_str(), first_line(entry.error).c_str());
    }
    return 0;
}
