// semshare: the command-line client of a semshare router (usage in router/client/cli.h).
#include <iostream>
#include <string>
#include <vector>

#include "router/client/cli.h"

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  const std::vector<std::string> args(argv + 1, argv + argc);
  return semshare::client::RunCli(args, std::cout, std::cerr);
}
