// The `semshare` binary as a child process against the fake router, and its flag parsing.
#include "router/client/cli.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <thread>

#include "common/file_util.h"
#include "common/json.h"
#include "tests/router/client/fake_router.h"

extern char** environ;

namespace semshare::client {
namespace {

using testing::FakeRouter;
using ::testing::HasSubstr;
using testing::kTestApiKey;
using ::testing::Not;

struct ProcessResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Reads until end of file, calling `on_read` with all text so far after each read.
std::string ReadAllFrom(int fd, const std::function<void(const std::string&)>& on_read = nullptr) {
  std::string text;
  char buffer[4096];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof(buffer))) > 0) {
    text.append(buffer, static_cast<size_t>(n));
    if (on_read) on_read(text);
  }
  close(fd);
  return text;
}

// Runs build/bin/semshare with `args` and collects its exit code, stdout and stderr;
// `on_stdout` sees stdout as it arrives.
ProcessResult RunSemshare(std::vector<std::string> args,
                          const std::function<void(const std::string&)>& on_stdout = nullptr) {
  int out_pipe[2];
  int err_pipe[2];
  EXPECT_EQ(pipe(out_pipe), 0);
  EXPECT_EQ(pipe(err_pipe), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) {
    posix_spawn_file_actions_addclose(&actions, fd);
  }
  const std::string binary = std::string(SEMSHARE_BIN_DIR) + "/semshare";
  args.insert(args.begin(), binary);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  EXPECT_EQ(posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&actions);
  close(out_pipe[1]);
  close(err_pipe[1]);
  ProcessResult result;
  // Both pipes drain at once so neither can fill up and stall the child.
  std::thread err_reader([&] { result.err = ReadAllFrom(err_pipe[0]); });
  result.out = ReadAllFrom(out_pipe[0], on_stdout);
  err_reader.join();
  int status = 0;
  waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

class SemshareCliTest : public ::testing::Test {
 protected:
  void SetUp() override { router_.Start(); }
  std::vector<std::string> Base(const std::string& command, const std::string& key = kTestApiKey) {
    return {command, "--router", router_.address(), "--api-key", key};
  }
  FakeRouter router_;
};

TEST_F(SemshareCliTest, GenerateStreamsTextAndSummarisesStats) {
  std::vector<std::string> args = Base("generate");
  args.insert(args.end(), {"--prompt", "why is the sky blue?", "--max-tokens", "8",
                           "--similarity-threshold", "0.75"});
  const ProcessResult run = RunSemshare(args);
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "The sky is blue because of Rayleigh.\n");
  EXPECT_THAT(run.err, HasSubstr("cache hit: reference ref-42"));
  EXPECT_THAT(run.err, HasSubstr("ttft 12.5 ms"));
  EXPECT_THAT(run.err, HasSubstr("fetch 2.5 ms"));
  ASSERT_TRUE(router_.last_request().has_value());
  EXPECT_EQ(router_.last_request()->max_tokens(), 8);
  EXPECT_DOUBLE_EQ(router_.last_request()->similarity_threshold(), 0.75);
}

TEST_F(SemshareCliTest, GenerateWritesTextAsItArrives) {
  // The router holds the rest of the stream until the first chunk shows on the CLI's stdout.
  router_.HoldAfterFirstChunk();
  std::vector<std::string> args = Base("generate");
  args.insert(args.end(), {"--prompt", "p", "--deadline-s", "60"});  // a buffering CLI fails
  const ProcessResult run = RunSemshare(args, [this](const std::string& out) {
    if (out == "The sky ") router_.Release();
  });
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "The sky is blue because of Rayleigh.\n");
}

TEST_F(SemshareCliTest, GenerateJsonIsOneObjectWithTextTokensAndStats) {
  const std::string prompt_file =
      JoinPath(::testing::TempDir(), "semshare_cli_prompt_" + std::to_string(getpid()) + ".txt");
  ASSERT_TRUE(WriteStringToFile(prompt_file, "from a file\n").ok());
  std::vector<std::string> args = Base("generate");
  args.insert(args.end(), {"--prompt-file", prompt_file, "--json"});
  const ProcessResult run = RunSemshare(args);
  EXPECT_EQ(run.exit_code, 0) << run.err;
  absl::StatusOr<Json> json = ParseJson(run.out);
  ASSERT_TRUE(json.ok()) << json.status() << "\n" << run.out;
  EXPECT_EQ((*json)["text"].string_value(), "The sky is blue because of Rayleigh.");
  EXPECT_EQ((*json)["token_ids"].array_items().size(), 6u);
  EXPECT_TRUE((*json)["stats"]["cache_hit"].bool_value());
  EXPECT_EQ((*json)["stats"]["reference_id"].string_value(), "ref-42");
  EXPECT_DOUBLE_EQ((*json)["stats"]["stages"]["decode_ms"].number_value(), 4.5);
  EXPECT_EQ(router_.last_request()->prompt(), "from a file\n");
}

TEST_F(SemshareCliTest, StatsPrintsCountersAndJson) {
  const ProcessResult table = RunSemshare(Base("stats"));
  EXPECT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("requests 5: 3 hits, 2 misses, 0 failures"));
  EXPECT_THAT(table.out, HasSubstr("DOWN"));
  std::vector<std::string> args = Base("stats");
  args.push_back("--json");
  const ProcessResult run = RunSemshare(args);
  EXPECT_EQ(run.exit_code, 0) << run.err;
  absl::StatusOr<Json> json = ParseJson(run.out);
  ASSERT_TRUE(json.ok()) << json.status() << "\n" << run.out;
  EXPECT_EQ((*json)["hits"].number_value(), 3);
  EXPECT_EQ((*json)["shards"].array_items().size(), 1u);
  EXPECT_EQ((*json)["workers"].array_items().size(), 1u);
}

TEST_F(SemshareCliTest, RefusedKeyExitsOneWithTheStatus) {
  std::vector<std::string> args = Base("generate", "sk-wrong");
  args.insert(args.end(), {"--prompt", "p"});
  const ProcessResult run = RunSemshare(args);
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.err, HasSubstr("UNAUTHENTICATED"));
  EXPECT_THAT(run.err, HasSubstr("unknown API key"));
  EXPECT_EQ(run.out, "");
  const ProcessResult stats = RunSemshare(Base("stats", "sk-wrong"));
  EXPECT_EQ(stats.exit_code, 1);
  EXPECT_THAT(stats.err, HasSubstr("unknown API key"));
}

TEST_F(SemshareCliTest, RouterInvalidArgumentStillExitsOne) {
  router_.FailWith(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "prompt too long"));
  std::vector<std::string> args = Base("generate");
  args.insert(args.end(), {"--prompt", "p"});
  const ProcessResult run = RunSemshare(args);
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.err, HasSubstr("prompt too long"));
}

TEST_F(SemshareCliTest, BadFlagsExitTwoWithAMessage) {
  struct Case {
    std::vector<std::string> extra;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {{"--prompt", "p", "--max-tokens", "many"}, "--max-tokens"},
           {{"--prompt", "p", "--similarity-threshold", "1.5"}, "--similarity-threshold"},
           {{}, "--prompt"},
           {{"--prompt", "p", "--prompt-file", "f"}, "--prompt"},
           {{"--prompt", "p", "--bogus", "1"}, "unknown flag --bogus"},
           {{"--prompt"}, "missing value"},
           {{"--prompt-file", "/nonexistent/prompt.txt"}, "--prompt-file"},
       }) {
    std::vector<std::string> args = Base("generate");
    args.insert(args.end(), c.extra.begin(), c.extra.end());
    const ProcessResult run = RunSemshare(args);
    EXPECT_EQ(run.exit_code, 2) << c.message;
    EXPECT_THAT(run.err, HasSubstr(c.message));
  }
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{}, {"frobnicate"}, {"stats", "--api-key", "k"}}) {
    const ProcessResult run = RunSemshare(args);
    EXPECT_EQ(run.exit_code, 2);
    EXPECT_THAT(run.err, HasSubstr("usage:"));
  }
  EXPECT_TRUE(router_.authorizations().empty());
}

TEST(ParseCliArgsTest, AcceptsBothFlagSpellings) {
  absl::StatusOr<CliCommand> command =
      ParseCliArgs({"generate", "--router=h:1", "--api_key", "k", "--prompt", "p", "--max_tokens=3",
                    "--json", "--deadline-s", "1.5"});
  ASSERT_TRUE(command.ok()) << command.status();
  EXPECT_EQ(command->kind, CliCommand::Kind::kGenerate);
  EXPECT_EQ(command->client.router_address, "h:1");
  EXPECT_EQ(command->client.api_key, "k");
  EXPECT_EQ(command->generate.max_tokens, 3);
  EXPECT_FALSE(command->generate.similarity_threshold.has_value());
  EXPECT_TRUE(command->json);
  EXPECT_EQ(command->client.deadline, absl::Milliseconds(1500));
}

TEST(ParseCliArgsTest, RejectsRepeatsAndGenerateFlagsOnStats) {
  EXPECT_TRUE(absl::IsInvalidArgument(
      ParseCliArgs({"stats", "--router", "h:1", "--router", "h:2", "--api-key", "k"}).status()));
  absl::StatusOr<CliCommand> command =
      ParseCliArgs({"stats", "--router", "h:1", "--api-key", "k", "--prompt", "p"});
  EXPECT_TRUE(absl::IsInvalidArgument(command.status()));
  EXPECT_THAT(command.status().message(), HasSubstr("--prompt"));
  EXPECT_THAT(command.status().message(), Not(HasSubstr("generate")));
}

TEST(ParseCliArgsTest, HelpIsNotAnError) {
  absl::StatusOr<CliCommand> command = ParseCliArgs({"generate", "--help"});
  ASSERT_TRUE(command.ok());
  EXPECT_EQ(command->kind, CliCommand::Kind::kHelp);
}

}  // namespace
}  // namespace semshare::client
