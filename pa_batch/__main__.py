from pa_batch.cli import main

main()
