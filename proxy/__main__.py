from proxy.runtime.cli import main

main()
