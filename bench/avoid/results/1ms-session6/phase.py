import json,sys
# decompose failures of an avoidance series: baseline runs, runs before the first contender, runs loading the most used constraint alone, with another, others
for path in sys.argv[1:]:
    rows=[json.loads(l) for l in open(path)]
    from collections import Counter
    use=Counter(c['id'] for r in rows for c in r['constraints'])
    top=use.most_common(1)[0][0] if use else None
    first_cont=next((r['n'] for r in rows if r.get('contenders',0)>0), None)
    cat=Counter(); fails=Counter()
    for r in rows:
        ids=[c['id'] for c in r['constraints']]
        if r['baseline']: k='baseline'
        elif top in ids and len(ids)==1: k='top-alone'
        elif top in ids: k='top+other'
        else: k='other'
        k2 = ('early-' if r['n']<=50 else '')+k
        cat[k2]+=1; fails[k2]+=r['failed']
    tot=sum(r['failed'] for r in rows)
    print(path, 'failures', tot, 'top', top, ' '.join('%s %d/%d'%(k,fails[k],cat[k]) for k in sorted(cat)))
